//! One clock for every host: the database server's time and the database's time zone, and the
//! `config` settings that hold the zone.

use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::Db;
use crate::domain::Clock;
use crate::error::OpError;

/// A host clock further than this from the database's is warned about.
pub const SKEW_WARNING: chrono::Duration = chrono::Duration::seconds(5);

/// The clock a call runs at, and what is worth telling about how it was agreed.
#[derive(Debug, Clone)]
pub struct SharedClock {
    pub clock: Clock,
    pub warnings: Vec<String>,
}

/// The clock every host agrees on: the database server's time on PostgreSQL (unless the
/// front end pinned it, as TOKENCTL_NOW does), and the database's time zone when one is set.
/// `local_zone` is the zone this host was told to use (TOKENCTL_TZ), if any: it may repeat the
/// database's but not contradict it, or hosts would file usage under different days.
pub async fn shared(db: &Db, clock: Clock, local_zone: Option<&str>) -> OpResult<SharedClock> {
    let clock = if clock.pinned {
        clock
    } else {
        let before = chrono::Utc::now();
        let db_now = db.server_now().await?;
        let after = chrono::Utc::now();
        clock.synced(db_now, before + (after - before) / 2)
    };
    let mut warnings = Vec::new();
    if let Some(skew) = clock.host_skew().filter(|s| s.abs() > SKEW_WARNING) {
        warnings.push(format!(
            "this host's clock is {:.1} s {} the database server's; tokenctl uses the database's, \
             but fix this host's clock (NTP) before it misleads anything else",
            skew.num_milliseconds().abs() as f64 / 1000.0,
            if skew > chrono::Duration::zero() {
                "ahead of"
            } else {
                "behind"
            }
        ));
    }
    let Some(stored) = db.timezone().await? else {
        return Ok(SharedClock { clock, warnings });
    };
    let tz: chrono_tz::Tz = stored.parse().map_err(|_| {
        OpError::new(
            crate::error::ErrorKind::Internal,
            format!("the database's time zone '{stored}' is not a known IANA zone"),
        )
    })?;
    if let Some(local) = local_zone.filter(|_| clock.tz != tz) {
        return Err(OpError::invalid(format!(
            "TOKENCTL_TZ={local} contradicts the database's time zone {stored} \
             (unset TOKENCTL_TZ, or change it for every host with: tokenctl config set --timezone ZONE)"
        )));
    }
    Ok(SharedClock {
        clock: Clock { tz, ..clock },
        warnings,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    pub timezone: String,
    /// database (shared by every host), environment (TOKENCTL_TZ on this host) or default
    pub timezone_source: &'static str,
    pub current_month: String,
}

/// The settings in force. `local_zone`: whether this host was told a zone of its own.
pub async fn config(db: &Db, clock: &Clock, local_zone: bool) -> OpResult<ConfigReport> {
    let source = if db.timezone().await?.is_some() {
        "database"
    } else if local_zone {
        "environment"
    } else {
        "default"
    };
    Ok(ConfigReport {
        timezone: clock.tz.name().to_string(),
        timezone_source: source,
        current_month: clock.periods().month,
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetTimezoneRequest {
    /// an IANA zone, e.g. Europe/Berlin
    pub timezone: String,
}

/// Stores the time zone every host files usage under.
pub async fn set_timezone(
    db: &Db,
    clock: &Clock,
    req: &SetTimezoneRequest,
) -> OpResult<ConfigReport> {
    let tz: chrono_tz::Tz = req.timezone.trim().parse().map_err(|_| {
        OpError::invalid(format!(
            "unknown time zone '{}': use an IANA name such as UTC or Europe/Berlin",
            req.timezone
        ))
    })?;
    db.set_timezone(tz.name(), clock).await?;
    Ok(ConfigReport {
        timezone: tz.name().to_string(),
        timezone_source: "database",
        current_month: Clock { tz, ..*clock }.periods().month,
    })
}
