//! The dashboard at `GET /` of a real `tokenctl serve`: the page and its embedded files are
//! served open with the right types, the data endpoints keep their token check, the page
//! calls only read endpoints, and, in a real headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which scripts/test.sh installs when missing),
//! on SQLite and PostgreSQL, the page shows the API's figures for known usage, follows a limit
//! crossed while it is open, changes its figures with the range, and asks again for a token
//! once it is revoked.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::{call, token, Answer, Serve};
use common::{free_port, Backend, Env};
use serde_json::{json, Value};

/// The files `index.html` loads, with the content type each must come with.
const ASSETS: &[(&str, &str)] = &[
    ("/assets/dashboard/app.js", "text/javascript"),
    ("/assets/dashboard/style.css", "text/css"),
    (
        "/assets/vendor/uplot-1.6.32/uPlot.iife.min.js",
        "text/javascript",
    ),
    ("/assets/vendor/uplot-1.6.32/uPlot.min.css", "text/css"),
    ("/assets/vendor/uplot-1.6.32/LICENSE", "text/plain"),
];

/// Every data endpoint: none may answer without a token because the dashboard exists.
const DATA_PATHS: &[&str] = &[
    "/api/token-usage/monthly",
    "/api/token-usage/monthly/imperium",
    "/api/token-usage/summary",
    "/api/token-usage/limits",
    "/api/token-usage/alerts",
    "/api/token-usage/alerts?active=true",
    "/api/token-usage/status/imperium",
    "/api/token-usage/distribution",
    "/api/usage/analytics?days=30",
    "/api/usage/quota/alice",
    "/api/usage/export.csv",
    "/metrics",
];

fn open_get(serve: &Serve, path: &str) -> Answer {
    call(serve, "GET", path, None, None)
}

#[track_caller]
fn assert_type(a: &Answer, path: &str, expected: &str) {
    assert_eq!(a.status, 200, "{path}: {}", a.text);
    let ct = a.header("content-type").unwrap_or("");
    assert!(ct.starts_with(expected), "{path}: content-type {ct}");
}

#[test]
fn the_page_and_its_files_are_served_open_and_the_data_stays_behind_a_token() {
    let env = Env::new(Backend::Sqlite);
    env.record("imperium", 10, 10);
    let serve = Serve::start(&env, &[]);

    let page = open_get(&serve, "/");
    assert_type(&page, "/", "text/html");
    assert!(page.text.contains("<title>tokenctl dashboard</title>"));
    // scripts only from this server: a token typed into the page cannot be sent elsewhere
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // every file the page names is served, and every file served is named by the page
    for (path, content_type) in ASSETS {
        assert!(page.text.contains(&format!("\"{path}\"")) || path.ends_with("LICENSE"));
        let a = open_get(&serve, path);
        assert_type(&a, path, content_type);
        assert!(!a.text.is_empty(), "{path} is empty");
    }
    for reference in page.text.split("\"/assets/").skip(1) {
        let path = format!("/assets/{}", reference.split('"').next().unwrap_or(""));
        assert_eq!(open_get(&serve, &path).status, 200, "{path}");
    }
    let missing = open_get(&serve, "/assets/dashboard/nope.js");
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(missing.json["error"].is_string(), "{}", missing.text);
    let escape = open_get(&serve, "/assets/../Cargo.toml");
    assert_eq!(escape.status, 404, "{}", escape.text);

    // the data endpoints still want a token, and a wrong one is refused
    for path in DATA_PATHS {
        let a = open_get(&serve, path);
        assert_eq!(a.status, 401, "{path} without a token: {}", a.text);
        let a = call(&serve, "GET", path, Some("not-a-token"), None);
        assert_eq!(a.status, 401, "{path} with a wrong token: {}", a.text);
    }

    // the OpenAPI document is still JSON and still describes the data endpoints
    let doc = open_get(&serve, "/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.json["openapi"].as_str().unwrap_or("").starts_with("3."));
    assert!(doc.json["paths"]["/api/usage/analytics"].is_object());
}

#[test]
fn the_page_calls_only_read_endpoints_and_keeps_the_token_out_of_urls() {
    let env = Env::new(Backend::Sqlite);
    env.record("imperium", 10, 10);
    let secret = token(&env, "dashboard", "read");
    let serve = Serve::start(&env, &[]);
    let app = open_get(&serve, "/assets/dashboard/app.js").text;

    // each path the script asks for (the literal before any query) answers a read token
    let mut paths = Vec::new();
    for piece in app.split("api(\"").skip(1) {
        let literal = piece.split('"').next().unwrap_or("");
        paths.push(literal.to_string());
    }
    assert!(paths.len() >= 5, "{paths:?}");
    for literal in &paths {
        let path = if literal.ends_with('=') {
            format!(
                "{literal}{}",
                if literal.contains("since") {
                    "2026-11-01"
                } else {
                    "30"
                }
            )
        } else {
            literal.clone()
        };
        assert!(path.starts_with("/api/"), "{path}");
        let a = call(&serve, "GET", &path, Some(&secret), None);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert!(a.json.is_object(), "{path}: {}", a.text);
    }
    // the token: session storage and the Authorization header, nowhere else
    assert!(app.contains("sessionStorage"));
    assert!(!app.contains("localStorage"));
    assert!(!app.contains("document.cookie"));
    assert!(app.contains("\"Bearer \""));
}

// ---- a real headless Chromium ----

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's `chromium` and `chromium-driver` must be installed (scripts/test.sh installs them
/// when missing): without them the test fails and says so.
fn chromium() -> Result<(), String> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} missing: this test drives a real headless Chromium. Run the tests with \
             scripts/test.sh, which installs Debian's chromium and chromium-driver, or \
             apt-get install chromium chromium-driver (as root)",
            missing.join(" and ")
        ))
    }
}

/// A chromedriver and one headless Chromium session, both gone when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Browser {
        if let Err(e) = chromium() {
            panic!("{e}");
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("LANG", "en_US.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // the page's console, for `console_errors`
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--lang=en-US", "--window-size=1280,1000"],
                "prefs": {"intl.accept_languages": "en-US"},
            },
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        let answer = browser.send("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let result = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let text = match result {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "WebDriver {method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v["value"].clone()
    }

    /// What the page wrote to its console at level SEVERE (errors, failed loads) since last
    /// asked.
    fn console_errors(&self) -> Vec<String> {
        let entries = self.send("POST", "/se/log", Some(json!({"type": "browser"})));
        entries
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn go(&self, url: &str) {
        self.send("POST", "/url", Some(json!({"url": url})));
    }

    fn js(&self, script: &str) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn element(&self, css: &str) -> String {
        let v = self.send(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.send(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.send("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Waits until `script` returns true (at most 20 s).
    fn wait_for(&self, script: &str) {
        let started = Instant::now();
        loop {
            if self.js(script) == Value::Bool(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never true: {script}\npage: {}",
                self.js("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, css: &str) -> String {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.innerText : null",
            json!(css)
        );
        self.js(&script).as_str().unwrap_or("").to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session))
                .timeout(Duration::from_secs(10))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Known usage: a priced request of alice's, guardian at warning (850 of 1,000) without a
/// price, and 250 tokens held.
fn known_usage(env: &Env) {
    env.ok(&[
        "prices",
        "set",
        "--model",
        "m1",
        "--input-per-mtok",
        "1000",
        "--output-per-mtok",
        "2000",
    ]);
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "guardian",
        "--monthly",
        "1000",
    ]);
    // no hourly nor daily cap in the way of the hold
    for target in [&["--global"][..], &["--ai-type", "imperium"][..]] {
        let mut args = vec!["limits", "set"];
        args.extend_from_slice(target);
        args.extend_from_slice(&["--hourly", "100000", "--daily", "100000"]);
        env.ok(&args);
    }
    env.json(&[
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "1200",
        "--tokens-out",
        "300",
        "--user-id",
        "alice",
        "--model",
        "m1",
    ]);
    env.record("guardian", 850, 0);
    let held = env.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--estimated-tokens",
        "250",
    ]);
    assert_eq!(held["allowed"], true, "{held}");
}

both!(
    in_chromium_the_page_shows_the_api_figures_and_asks_again_when_the_token_is_revoked,
    |env| {
        known_usage(&env);
        let secret = token(&env, "dashboard", "read");
        let serve = Serve::start(&env, &[]);
        let status = call(
            &serve,
            "GET",
            "/api/token-usage/monthly",
            Some(&secret),
            None,
        )
        .json;
        let report = call(
            &serve,
            "GET",
            "/api/usage/analytics?days=30",
            Some(&secret),
            None,
        )
        .json;
        assert_eq!(report["totals"]["tokens"], 2350, "{report}");
        assert_eq!(status["global"]["reserved_tokens"], 250, "{status}");

        let browser = Browser::start();
        browser.go(&serve.url("/"));
        browser.wait_for("return !document.getElementById('login').hidden");
        // a wrong token: a clear message, and the form again
        browser.type_into("#token", "wrong-token");
        browser.click("#login-form button[type=submit]");
        browser.wait_for("return document.getElementById('login-error').textContent.length > 0");
        assert!(
            browser.text("#login-error").contains("not accepted"),
            "{}",
            browser.text("#login-error")
        );

        browser.type_into("#token", &secret);
        browser.click("#login-form button[type=submit]");
        browser.wait_for("return document.getElementById('card-tokens').textContent !== '–'");

        // the summary cards: the report's totals, with thousands separators
        assert_eq!(browser.text("#card-requests"), "2");
        assert_eq!(browser.text("#card-tokens"), "2,350");
        assert_eq!(browser.text("#card-cost"), "$1.80");
        assert_eq!(browser.text("#card-users"), "1");
        // guardian's request has no model, hence no price: the cost says it is a floor
        assert!(
            browser.text("#card-cost-note").contains("1 request"),
            "{}",
            browser.text("#card-cost-note")
        );

        // the bars: level by colour class and word, held apart from used
        let guardian = browser.js(
            "var li = document.querySelector('#bars li[data-ai-type=\"guardian\"]'); \
         return li ? [li.className, li.innerText] : null",
        );
        assert_eq!(guardian[0], "level-warning", "{guardian}");
        let text = guardian[1].as_str().unwrap_or("");
        assert!(text.contains("850 used of 1,000 (85 %)"), "{text}");
        assert!(text.to_lowercase().contains("warning"), "{text}");
        let imperium = browser.text("#bars li[data-ai-type=\"imperium\"]");
        assert!(imperium.contains("1,500 used + 250 held"), "{imperium}");
        let total = browser.text("#bars li.total");
        let g = &status["global"];
        let expected = format!(
            "2,350 used + 250 held of {}",
            group(g["enforced_limit"].as_i64().unwrap_or(0))
        );
        assert!(total.contains(&expected), "{total} / {expected}");

        // top users and models, alerts, the charts
        let users = browser.text("#top-users");
        assert!(
            users.contains("alice") && users.contains("$1.80"),
            "{users}"
        );
        let models = browser.text("#top-models");
        assert!(
            models.contains("m1") && models.contains("(no model)") && models.contains("+ unpriced"),
            "{models}"
        );
        let alerts = browser.text("#alerts");
        assert!(
            alerts.contains("guardian") && alerts.contains("WARNING"),
            "{alerts}"
        );
        assert_eq!(
            browser.js("return document.querySelectorAll('.uplot').length"),
            2
        );
        let projected = group(g["projected_month_total"].as_i64().unwrap_or(-1));
        let note = browser.text("#trend-note");
        assert!(note.contains(&projected), "{note} / {projected}");
        // times in the configured zone, named
        assert!(browser.text("#updated").contains("(UTC)"));

        // the token: in this tab's session storage, never in the URL nor in local storage
        let kept = browser.js(
        "return [sessionStorage.getItem('tokenctl.readToken'), location.href, localStorage.length]",
    );
        assert_eq!(kept[0], secret.as_str());
        assert!(!kept[1].as_str().unwrap_or("").contains(&secret), "{kept}");
        assert_eq!(kept[2], 0);

        // the range: 7 days asks the report again
        browser.click("input[name=range][value=\"7\"]");
        browser.wait_for("return document.getElementById('range-days').textContent === '7'");

        // a phone's width: nothing wider than the screen
        browser.send(
            "POST",
            "/window/rect",
            Some(json!({"width": 375, "height": 800})),
        );
        browser.wait_for("return window.innerWidth <= 400");
        std::thread::sleep(Duration::from_millis(400));
        let widths = browser.js("return [document.documentElement.scrollWidth, window.innerWidth]");
        assert!(
            widths[0].as_i64() <= widths[1].as_i64(),
            "the page is wider than a phone: {widths}"
        );

        // revoked while the page is open: the next refresh asks for a token again
        env.ok(&["tokens", "revoke", "--name", "dashboard"]);
        // the server trusts a checked token for a second (auth::TOKEN_TRUST)
        std::thread::sleep(Duration::from_millis(1100));
        browser.click("#refresh");
        browser.wait_for("return !document.getElementById('login').hidden");
        assert!(browser.text("#login-error").contains("revoked"));
        assert_eq!(
            browser.js("return sessionStorage.getItem('tokenctl.readToken')"),
            Value::Null
        );
    }
);

both!(in_chromium_an_empty_database_says_what_to_do, |env| {
    let secret = token(&env, "dashboard", "read");
    let serve = Serve::start(&env, &[]);
    let browser = Browser::start();
    browser.go(&serve.url("/"));
    browser.wait_for("return !document.getElementById('login').hidden");
    browser.type_into("#token", &secret);
    browser.click("#login-form button[type=submit]");
    browser.wait_for("return document.getElementById('card-tokens').textContent !== '–'");
    assert_eq!(browser.text("#card-tokens"), "0");
    for css in ["#bars", "#chart-month"] {
        let text = browser.text(css);
        assert!(
            text.contains("No usage") && text.contains("tokenctl record"),
            "{css}: {text}"
        );
    }
    assert!(browser.text("#alerts").contains("No active alerts"));
    assert!(browser.text("#top-users").contains("--user-id"));
});

/// Opens the page and signs in with `secret`, waiting for the first figures.
fn sign_in(browser: &Browser, serve: &Serve, secret: &str) {
    browser.go(&serve.url("/"));
    browser.wait_for("return !document.getElementById('login').hidden");
    browser.type_into("#token", secret);
    browser.click("#login-form button[type=submit]");
    browser.wait_for("return document.getElementById('card-tokens').textContent !== '–'");
}

/// The class and the text of an AI type's bar.
fn bar_of(browser: &Browser, ai_type: &str) -> (String, String) {
    let script = format!(
        "var li = document.querySelector('#bars li[data-ai-type=' + {} + ']'); \
         return li ? [li.className, li.innerText] : ['', '']",
        json!(json!(ai_type).to_string())
    );
    let v = browser.js(&script);
    (
        v[0].as_str().unwrap_or("").to_string(),
        v[1].as_str().unwrap_or("").to_string(),
    )
}

both!(
    in_chromium_a_limit_crossed_while_the_page_is_open_shows_at_the_next_refresh,
    |env| {
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "guardian",
            "--monthly",
            "1000",
        ]);
        env.record("guardian", 500, 0);
        let secret = token(&env, "dashboard", "read");
        let serve = Serve::start(&env, &[]);
        let browser = Browser::start();
        sign_in(&browser, &serve, &secret);
        let (class, text) = bar_of(&browser, "guardian");
        assert_eq!(class, "level-ok", "{text}");
        assert!(text.contains("500 used of 1,000 (50 %)"), "{text}");

        // past 80 % of the month's limit while the page is open
        env.record("guardian", 350, 0);
        let status = env.status_of("guardian");
        assert_eq!(status["level"], "warning", "{status}");
        // one refresh (the button; the timer does the same every 30 s) shows it
        browser.click("#refresh");
        browser.wait_for(
            "var li = document.querySelector('#bars li[data-ai-type=\"guardian\"]'); \
             return li !== null && li.className === 'level-warning'",
        );
        let (_, text) = bar_of(&browser, "guardian");
        assert!(text.contains("850 used of 1,000 (85 %)"), "{text}");
        assert!(text.to_lowercase().contains("warning"), "{text}");
        // the colour is the warning colour, not the ok one
        let colours = browser.js(
            "var li = document.querySelector('#bars li[data-ai-type=\"guardian\"]'); \
             var css = getComputedStyle(document.documentElement); \
             return [getComputedStyle(li.querySelector('.used')).backgroundColor, \
                     css.getPropertyValue('--warning').trim(), css.getPropertyValue('--ok').trim()]",
        );
        assert_ne!(colours[1], colours[2], "{colours}");
        let probe = browser.js(&format!(
            "var p = document.createElement('div'); p.style.backgroundColor = {}; \
             document.body.appendChild(p); var c = getComputedStyle(p).backgroundColor; \
             p.remove(); return c",
            json!(colours[1].as_str().unwrap_or(""))
        ));
        assert_eq!(colours[0], probe, "{colours}");
    }
);

both!(in_chromium_the_range_changes_the_figures, |env| {
    // bob 40 days ago (in 90 days, not in 7), alice 3 days ago (in both)
    env.at("2026-10-14T09:00:00Z").json(&[
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "4000",
        "--tokens-out",
        "1000",
        "--user-id",
        "bob",
        "--model",
        "m-old",
    ]);
    env.at("2026-11-20T09:00:00Z").json(&[
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "700",
        "--tokens-out",
        "100",
        "--user-id",
        "alice",
        "--model",
        "m-new",
    ]);
    let secret = token(&env, "dashboard", "read");
    let serve = Serve::start(&env, &[]);
    let report = |days: i64| {
        call(
            &serve,
            "GET",
            &format!("/api/usage/analytics?days={days}"),
            Some(&secret),
            None,
        )
        .json
    };
    let (week, quarter) = (report(7), report(90));
    assert_eq!(week["totals"]["tokens"], 800, "{week}");
    assert_eq!(quarter["totals"]["tokens"], 5800, "{quarter}");

    let browser = Browser::start();
    sign_in(&browser, &serve, &secret);
    let in_week: (&[&str], &[&str]) = (&["alice", "m-new"], &["bob", "m-old"]);
    let in_quarter: (&[&str], &[&str]) = (&["alice", "m-new", "bob", "m-old"], &[]);
    for (days, expected, (present, absent)) in [
        ("7", &week, in_week),
        ("90", &quarter, in_quarter),
        ("7", &week, in_week),
    ] {
        browser.click(&format!("input[name=range][value=\"{days}\"]"));
        browser.wait_for(&format!(
            "return document.getElementById('range-days').textContent === '{days}'"
        ));
        // the trend of tokens and cost per day follows the range: a point a day
        assert_eq!(
            browser.js("return document.getElementById('chart-daily').dataset.days"),
            json!(days),
            "{days} days: the daily chart"
        );
        let t = &expected["totals"];
        let cards = [
            ("#card-requests", &t["requests"]),
            ("#card-tokens", &t["tokens"]),
            ("#card-users", &t["unique_users"]),
        ];
        for (css, figure) in cards {
            assert_eq!(
                browser.text(css),
                group(figure.as_i64().unwrap_or(-1)),
                "{days} days, {css}: {expected}"
            );
        }
        let tables = format!(
            "{}\n{}",
            browser.text("#top-users"),
            browser.text("#top-models")
        );
        for name in present {
            assert!(tables.contains(name), "{days} days, {name}: {tables}");
        }
        for name in absent {
            assert!(!tables.contains(name), "{days} days, {name}: {tables}");
        }
    }
    // loaded, signed in, three ranges drawn: not one error in the console
    assert_eq!(browser.console_errors(), Vec::<String>::new());
});

/// `n` with thousands separators, as en-US writes it.
fn group(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}
