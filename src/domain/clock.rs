//! "Now" and the periods it falls in. Periods are calendar months, days and hours in the
//! configured zone (UTC unless TOKENCTL_TZ names another), so usage is keyed by period and a
//! month's usage can never count against the next one.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, SubsecRound, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    /// TOKENCTL_NOW fixed the time: it does not move on
    pub pinned: bool,
    /// where "now" comes from
    pub source: ClockSource,
    /// the database's clock minus this host's (zero unless the source is the database)
    pub offset: Duration,
}

/// Whose clock tokenctl reads. Hosts sharing a PostgreSQL database all use its server's
/// clock, so a host whose clock is off cannot expire others' holds, reset the rpm counter or
/// file usage in another month; SQLite has no server, and every process using one file runs on
/// the same host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// TOKENCTL_NOW
    Pinned,
    Host,
    Database,
}

/// The keys of the month, day and hour that contain an instant, and when each ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    /// 'YYYY-MM', the `token_usage.month_year` key
    pub month: String,
    /// 'YYYY-MM-DD'
    pub day: String,
    /// 'YYYY-MM-DDTHH'
    pub hour: String,
    pub month_start: DateTime<Utc>,
    pub month_end: DateTime<Utc>,
    pub day_end: DateTime<Utc>,
    pub hour_end: DateTime<Utc>,
    /// when the current local hour began, at the offset in force now (exact on the night the
    /// clocks go back, when the same wall-clock hour happens twice)
    pub hour_start: DateTime<Utc>,
    /// 'YYYY-MM-DDTHH:MM' in UTC (every zone's offset is whole minutes): the rpm window
    pub minute: String,
    pub minute_end: DateTime<Utc>,
}

impl Periods {
    /// The day (in the configured zone) as a date: what prices are in force on, and the day of
    /// a report's rollup.
    pub fn date(&self) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(&self.day, "%Y-%m-%d").unwrap_or_default()
    }
}

impl Clock {
    /// `now_override` is TOKENCTL_NOW (RFC 3339), `tz` an IANA zone name such as Europe/Berlin.
    pub fn new(now_override: Option<&str>, tz: Option<&str>) -> Result<Clock, String> {
        let now = match now_override.map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    format!("TOKENCTL_NOW must be an RFC 3339 time such as 2026-11-23T10:00:00Z, got '{text}'")
                })?
                .with_timezone(&Utc),
            // microseconds: what both databases store
            None => Utc::now().trunc_subsecs(6),
        };
        let tz = match tz.map(str::trim).filter(|s| !s.is_empty()) {
            Some(name) => name.parse::<Tz>().map_err(|_| {
                format!("unknown time zone '{name}': use an IANA name such as UTC or Europe/Berlin")
            })?,
            None => Tz::UTC,
        };
        let pinned = now_override.is_some_and(|s| !s.trim().is_empty());
        Ok(Clock {
            now,
            tz,
            pinned,
            source: if pinned {
                ClockSource::Pinned
            } else {
                ClockSource::Host
            },
            offset: Duration::zero(),
        })
    }

    pub fn at(now: DateTime<Utc>) -> Clock {
        Clock {
            now,
            tz: Tz::UTC,
            pinned: true,
            source: ClockSource::Pinned,
            offset: Duration::zero(),
        }
    }

    /// The same clock read again (for long-running commands); a pinned clock stays put.
    pub fn refreshed(self) -> Clock {
        if self.pinned {
            self
        } else {
            Clock {
                now: Utc::now().trunc_subsecs(6) + self.offset,
                ..self
            }
        }
    }

    /// The clock after the database's was read (`db_now`, None where it has none), at
    /// `host_now` by this host's clock: from then on "now" is the database's. A pinned clock
    /// stays put.
    pub fn synced(self, db_now: Option<DateTime<Utc>>, host_now: DateTime<Utc>) -> Clock {
        match (self.pinned, db_now) {
            (true, _) => self,
            (false, Some(db)) => Clock {
                now: db.trunc_subsecs(6),
                source: ClockSource::Database,
                offset: db - host_now,
                ..self
            },
            (false, None) => self.refreshed(),
        }
    }

    /// How far this host's clock is ahead of the database's (negative: behind); None unless
    /// the database's clock is the one in use.
    pub fn host_skew(&self) -> Option<Duration> {
        (self.source == ClockSource::Database).then(|| -self.offset)
    }

    pub fn periods(&self) -> Periods {
        periods_at(self.now, self.tz)
    }
}

pub fn periods_at(instant: DateTime<Utc>, tz: Tz) -> Periods {
    let local = instant.with_timezone(&tz).naive_local();
    let day_start = local.date().and_hms_opt(0, 0, 0).expect("midnight exists");
    let hour_start = day_start + Duration::hours(local.hour() as i64);
    let month_first =
        NaiveDate::from_ymd_opt(local.year(), local.month(), 1).expect("first of month");
    let next_month_first = first_of_next_month(month_first);
    Periods {
        month: local.format("%Y-%m").to_string(),
        day: local.format("%Y-%m-%d").to_string(),
        hour: local.format("%Y-%m-%dT%H").to_string(),
        month_start: resolve(tz, month_first.and_hms_opt(0, 0, 0).expect("midnight")),
        month_end: resolve(tz, next_month_first.and_hms_opt(0, 0, 0).expect("midnight")),
        day_end: resolve(tz, day_start + Duration::days(1)),
        hour_end: resolve(tz, hour_start + Duration::hours(1)),
        hour_start: instant - (local - hour_start),
        minute: instant.format("%Y-%m-%dT%H:%M").to_string(),
        minute_end: instant
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(instant)
            + Duration::minutes(1),
    }
}

/// The start of month 'YYYY-MM' in `tz` and the start of the following month.
pub fn month_bounds(month: &str, tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let start = resolve(tz, first.and_hms_opt(0, 0, 0)?);
    let end = resolve(tz, first_of_next_month(first).and_hms_opt(0, 0, 0)?);
    Some((start, end))
}

fn first_of_next_month(first: NaiveDate) -> NaiveDate {
    if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .expect("valid month")
}

/// A local wall-clock time as an instant. A time skipped by a DST jump resolves to the first
/// instant after the gap; an ambiguous one to its earlier occurrence.
fn resolve(tz: Tz, mut local: NaiveDateTime) -> DateTime<Utc> {
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local = local.with_minute(0).unwrap_or(local) + Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn utc_periods() {
        let p = periods_at(utc("2026-12-31T23:59:59Z"), Tz::UTC);
        assert_eq!(
            (p.month.as_str(), p.day.as_str(), p.hour.as_str()),
            ("2026-12", "2026-12-31", "2026-12-31T23")
        );
        assert_eq!(p.month_end, utc("2027-01-01T00:00:00Z"));
        assert_eq!(p.day_end, utc("2027-01-01T00:00:00Z"));
        assert_eq!(p.hour_end, utc("2027-01-01T00:00:00Z"));
        let q = periods_at(utc("2027-01-01T00:00:00Z"), Tz::UTC);
        assert_eq!(q.month, "2027-01");
    }

    #[test]
    fn leap_day() {
        let p = periods_at(utc("2028-02-29T12:00:00Z"), Tz::UTC);
        assert_eq!(p.day, "2028-02-29");
        assert_eq!(p.month_end, utc("2028-03-01T00:00:00Z"));
    }

    #[test]
    fn a_zone_moves_the_month_boundary() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let p = periods_at(utc("2026-11-30T23:30:00Z"), berlin);
        assert_eq!(p.month, "2026-12");
        assert_eq!(p.month_start, utc("2026-11-30T23:00:00Z"));
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(periods_at(utc("2026-12-01T03:00:00Z"), ny).month, "2026-11");
    }

    #[test]
    fn the_repeated_hour_when_clocks_go_back() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC) on 2026-10-25
        let first = periods_at(utc("2026-10-25T00:30:00Z"), berlin);
        let second = periods_at(utc("2026-10-25T01:30:00Z"), berlin);
        assert_eq!(first.hour, second.hour, "one wall-clock hour, one window");
        assert_eq!(first.hour_start, utc("2026-10-25T00:00:00Z"));
        assert_eq!(second.hour_start, utc("2026-10-25T01:00:00Z"));
        let india: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            periods_at(utc("2026-11-23T10:45:00Z"), india).hour_start,
            utc("2026-11-23T10:30:00Z")
        );
    }

    #[test]
    fn the_database_clock_replaces_the_hosts() {
        let host = utc("2026-11-30T23:50:00Z");
        let db = utc("2026-12-01T00:05:00Z");
        let c = Clock::new(None, None).unwrap().synced(Some(db), host);
        assert_eq!(c.now, db);
        assert_eq!(c.periods().month, "2026-12", "the database's month counts");
        assert_eq!(c.host_skew(), Some(Duration::minutes(-15)));
        // re-read later: the host's clock plus the offset
        let later = c.refreshed();
        assert!(
            (later.now - (Utc::now() + Duration::minutes(15)))
                .num_seconds()
                .abs()
                <= 1
        );
        // TOKENCTL_NOW wins over every clock
        let pinned = Clock::new(Some("2026-11-23T10:00:00Z"), None).unwrap();
        let p = pinned.synced(Some(db), host);
        assert_eq!(
            (p.now, p.source, p.host_skew()),
            (pinned.now, ClockSource::Pinned, None)
        );
        // SQLite: no server clock, the host's is read again
        let h = Clock::new(None, None).unwrap().synced(None, host);
        assert_eq!((h.source, h.host_skew()), (ClockSource::Host, None));
    }

    #[test]
    fn bad_inputs_are_rejected() {
        assert!(Clock::new(Some("yesterday"), None).is_err());
        assert!(Clock::new(None, Some("Mars/Olympus")).is_err());
        assert!(Clock::new(Some("2026-11-23T10:00:00+02:00"), Some("Asia/Kolkata")).is_ok());
    }
}
