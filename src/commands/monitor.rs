//! `monitor`: each tick reads every AI type and the total, raises alerts for levels entered
//! upwards (database first, then the alerts file, then the webhook), and shows the state: a
//! live view on a terminal, one line (or one JSON object) per tick elsewhere.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::SecondsFormat;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;

use crate::cli::MonitorArgs;
use crate::db::{AlertRow, Db, DbUrl};
use crate::domain::number::thousands_f;
use crate::domain::{Clock, Level};
use crate::error::{one_line, redact, ErrorKind};
use crate::ops::monitor::{tick, ScopeState, Tick};
use crate::output::{thousands, wrap, Style};

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
const WEBHOOK_ATTEMPTS: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a tick in progress may finish after SIGINT/SIGTERM (exit stays within a second).
const TICK_GRACE: Duration = Duration::from_millis(700);

/// Appends each alert as one JSON line.
fn append_alerts(path: &Path, alerts: &[AlertRow]) -> Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the alerts file {}", path.display()))?;
    let mut lines = String::new();
    for a in alerts {
        lines.push_str(&serde_json::to_string(a)?);
        lines.push('\n');
    }
    file.write_all(lines.as_bytes())
        .with_context(|| format!("cannot write the alerts file {}", path.display()))?;
    Ok(())
}

/// Slack-compatible: `text` for people, the alert's fields for machines.
fn webhook_body(a: &AlertRow) -> String {
    let text = match &a.recommended_action {
        Some(action) => format!("tokenctl {}\n{}", a.message, action),
        None => format!("tokenctl {}", a.message),
    };
    serde_json::json!({ "text": text, "tokenctl_alert": a }).to_string()
}

/// POSTs with a timeout, retrying with backoff; a failure is reported, never fatal.
fn deliver(url: &str, body: &str) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new().timeout(WEBHOOK_TIMEOUT).build();
    let mut last = String::new();
    for attempt in 0..WEBHOOK_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
        match agent
            .post(url)
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Status(code, _)) => last = format!("HTTP {code}"),
            // ureq's message quotes the URL, whose path is the secret (Slack's token)
            Err(e) => last = e.to_string().replace(url, &webhook_shown(url)),
        }
    }
    Err(last)
}

/// A webhook URL as it may be shown: scheme and host only. Its path and query are a secret
/// (Slack and others put the token there), like a database password.
pub fn webhook_shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            // user info would be a secret too
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("{scheme}://{host}/***")
        }
        None => "the webhook".to_string(),
    }
}

/// A tick off a terminal: a line per scope (the total first, as `*`), then its new alerts,
/// each line stamped with the tick's time so a log can be grepped; an alert's message is
/// wrapped to `width` under its first line.
fn plain_lines(t: &Tick, width: usize) -> Vec<String> {
    let at = t.at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut lines: Vec<String> = std::iter::once(&t.global)
        .chain(t.ai_types.iter())
        .map(|s| {
            format!(
                "{at} {} {} {}/{} {:.2}% {}",
                t.month,
                s.ai_type,
                thousands(s.total_tokens),
                thousands(s.limit),
                s.usage_percentage,
                s.level
            )
        })
        .collect();
    for a in &t.new_alerts {
        lines.extend(wrap(&format!("{at} ALERT {}", a.message), width, 4));
    }
    lines
}

/// The live view: one bar per AI type and one for the total, and a line for the next tick.
struct LiveView {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    footer: ProgressBar,
    color: bool,
    width: usize,
}

/// The narrowest bar worth drawing.
const MIN_BAR: usize = 10;

impl LiveView {
    fn new(color: bool, width: usize) -> LiveView {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let footer = multi.add(ProgressBar::new_spinner());
        LiveView {
            multi,
            bars: BTreeMap::new(),
            footer,
            color,
            width,
        }
    }

    fn style(&self, level: Level, name_width: usize, bar_width: usize) -> ProgressStyle {
        let colour = match (self.color, level) {
            (false, _) => "",
            (true, Level::Ok) => ".green",
            (true, Level::Warning) => ".yellow",
            (true, Level::Critical) => ".red",
            (true, Level::Emergency) => ".magenta",
        };
        ProgressStyle::with_template(&format!(
            "{{prefix:<{name_width}}} [{{bar:{bar_width}{colour}}}] {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉ ")
    }

    /// A bar per scope, sized to the width: the name, the bar, then the figures; the burn rate
    /// and the projected date go first when the line would not fit with a useful bar.
    fn show(&mut self, t: &Tick) {
        let scopes: Vec<&ScopeState> = std::iter::once(&t.global)
            .chain(t.ai_types.iter())
            .collect();
        let name_width = scopes
            .iter()
            .map(|s| s.ai_type.chars().count())
            .max()
            .unwrap_or(1)
            .min(24);
        let figures = |s: &ScopeState, detail: usize| {
            let mut m = format!(
                "{:.1}% {} {}/{}",
                s.usage_percentage,
                s.level,
                thousands(s.total_tokens),
                thousands(s.limit)
            );
            if detail >= 1 {
                m.push_str(&format!(
                    " {}/h",
                    thousands_f(s.burn.burn_rate_per_hour.unwrap_or(0.0))
                ));
            }
            if let (2, Some(at)) = (detail, s.burn.projected_exhaustion_at) {
                m.push_str(&format!(" full {}", at.format("%m-%d %H:%M")));
            }
            m
        };
        // name, " [", bar, "] ", figures
        let room = |detail: usize| {
            let longest = scopes
                .iter()
                .map(|s| figures(s, detail).chars().count())
                .max()
                .unwrap_or(0);
            self.width.saturating_sub(name_width + 4 + longest)
        };
        let detail = (0..=2).rev().find(|&d| room(d) >= MIN_BAR).unwrap_or(0);
        let bar_width = room(detail).clamp(MIN_BAR, 50);
        for s in scopes {
            let style = self.style(s.level, name_width, bar_width);
            let bar = self.bars.entry(s.ai_type.clone()).or_insert_with(|| {
                let b = self.multi.insert_before(&self.footer, ProgressBar::new(1));
                b.set_prefix(s.ai_type.clone());
                b
            });
            bar.set_style(style);
            bar.set_length(s.limit.max(1) as u64);
            bar.set_position(s.total_tokens.clamp(0, s.limit.max(1)) as u64);
            bar.set_message(figures(s, detail));
        }
        for a in &t.new_alerts {
            for line in wrap(&format!("ALERT {}", a.message), self.width, 4) {
                let _ = self.multi.println(line);
            }
        }
    }

    fn countdown(&self, seconds_left: u64) {
        self.footer
            .set_message(format!("next tick in {seconds_left}s (Ctrl-C to stop)"));
        self.footer.tick();
    }
}

/// SIGINT or SIGTERM: a permit on `stop` (kept if nobody is waiting at that instant).
fn watch_signals(stop: Arc<Notify>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop.notify_one();
    });
    Ok(())
}

/// Opens the database and settles the clock as every other command does: the database's time
/// zone, a contradicting TOKENCTL_TZ refused. Done on every (re)connect, so a zone set with
/// `config set` while the monitor was away is used from its next tick.
async fn connect(url: &DbUrl, clock: Clock) -> Result<(Db, Clock)> {
    let db = Db::open(url).await?;
    let clock = super::shared_clock(&db, clock).await?;
    Ok((db, clock))
}

/// `clock` comes from the environment; the database's time zone is applied on connecting.
pub async fn run(url: &DbUrl, clock: Clock, style: Style, args: MonitorArgs) -> Result<ExitCode> {
    let secrets = url.secrets();
    if args.once {
        // cron runs it again soon and mails the failure: no waiting, exit 1 on one line
        let (db, clock) = connect(url, clock).await?;
        let t = tick(&db, &clock.refreshed()).await?;
        let filed = publish(&t, &args, (style.terminal, style.width), None);
        let posted = deliver_all(&t, &args, None, filed).await;
        // an alert a configured sink did not get is a failed run for cron (it is in the
        // database either way, and `tokenctl alerts` shows it)
        return Ok(if filed && posted {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::error::EXIT_FAILURE)
        });
    }
    let stop = Arc::new(Notify::new());
    watch_signals(stop.clone())?;
    let live = style.terminal && !args.json;
    let mut view = live.then(|| LiveView::new(style.color, style.width));
    // Not connected yet: the first tick connects, so a monitor started before its database
    // (a service at boot) waits for it with the same backoff as after an outage.
    let mut conn: Option<(Db, Clock)> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let outcome = {
            let result = async {
                let (db, shared) = match conn.take() {
                    Some(c) => c,
                    None => connect(url, clock).await?,
                };
                let t = tick(&db, &shared.refreshed())
                    .await
                    .map_err(anyhow::Error::from);
                conn = Some((db, shared));
                t
            };
            // A signal during a tick gives it a moment to finish, so an alert it commits is also
            // written to the file; a tick stuck on the database is abandoned (nothing committed).
            tokio::pin!(result);
            tokio::select! {
                r = &mut result => r,
                _ = stop.notified() => match tokio::time::timeout(TICK_GRACE, &mut result).await {
                    Ok(Ok(t)) => {
                        publish(&t, &args, (live, style.width), view.as_mut());
                        break;
                    }
                    _ => break,
                },
            }
        };
        let wait = match outcome {
            Ok(t) => {
                backoff = Duration::from_secs(1);
                let filed = publish(&t, &args, (live, style.width), view.as_mut());
                let delivered = deliver_all(&t, &args, view.as_ref(), filed);
                tokio::select! {
                    _ = delivered => {}
                    _ = stop.notified() => break,
                }
                Duration::from_secs(args.interval)
            }
            // bad input (a TOKENCTL_TZ that contradicts the database's zone) does not get
            // better by waiting: exit 2 as every other command does
            Err(e) if ErrorKind::of(&e) == ErrorKind::InvalidInput => {
                return Err(e);
            }
            Err(e) => {
                // a database not up yet or gone away (restart, lock): report, reconnect later
                conn = None;
                let wait = backoff;
                eprintln!(
                    "tokenctl: monitor: {}; retrying in {} s",
                    redact(&one_line(&e), &secrets),
                    wait.as_secs()
                );
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        if !sleep_or_stop(wait, &stop, view.as_ref()).await {
            break;
        }
    }
    if let Some(v) = view {
        v.footer.finish_and_clear();
    }
    Ok(ExitCode::SUCCESS)
}

/// Sleeps `wait`, counting down on a terminal; false when a signal came first.
async fn sleep_or_stop(wait: Duration, stop: &Notify, view: Option<&LiveView>) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        if let Some(v) = view {
            v.countdown(left.as_secs_f64().ceil() as u64);
        }
        let step = left.min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = stop.notified() => return false,
        }
    }
}

/// Shows the tick and appends its new alerts to the alerts file; false when the file could
/// not take them.
fn publish(
    t: &Tick,
    args: &MonitorArgs,
    (live, width): (bool, usize),
    view: Option<&mut LiveView>,
) -> bool {
    // the database has the alerts already; the file comes next, whatever the webhook does
    let filed = match append_alerts(&args.alerts_file, &t.new_alerts) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "tokenctl: monitor: {}; the alert(s) are in the database only (tokenctl alerts)",
                one_line(&e)
            );
            false
        }
    };
    if args.json {
        match serde_json::to_string(t) {
            Ok(line) => crate::outln!("{line}"),
            Err(e) => eprintln!("tokenctl: monitor: cannot encode the tick: {e}"),
        }
    } else if let (true, Some(v)) = (live, view) {
        v.show(t);
    } else {
        for line in plain_lines(t, width) {
            crate::outln!("{line}");
        }
    }
    let _ = std::io::stdout().flush();
    filed
}

/// POSTs each new alert to the webhook; false when one did not get through. `filed`: whether
/// the alerts file has them, for saying exactly where an undelivered alert is.
async fn deliver_all(t: &Tick, args: &MonitorArgs, view: Option<&LiveView>, filed: bool) -> bool {
    let Some(url) = args.webhook.clone() else {
        return true;
    };
    let mut all = true;
    for a in &t.new_alerts {
        let body = webhook_body(a);
        let target = url.clone();
        let result = tokio::task::spawn_blocking(move || deliver(&target, &body)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = failure {
            all = false;
            let line = format!(
                "tokenctl: monitor: webhook {} failed after {WEBHOOK_ATTEMPTS} attempts ({e}); alert {} is in the database{}",
                webhook_shown(&url),
                a.id,
                if filed { " and the alerts file" } else { " only" }
            );
            match view {
                Some(v) => {
                    let _ = v.multi.println(&line);
                }
                None => eprintln!("{line}"),
            }
        }
    }
    all
}
