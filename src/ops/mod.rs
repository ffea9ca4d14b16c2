//! The operations: one async function per thing tokenctl does, a typed request in, a
//! serializable response out, an `OpError` (with its kind) on failure. Every front end calls
//! these and only these: a CLI command parses flags into the request and prints the response;
//! an HTTP handler will deserialize a body into the same request and serialize the same
//! response. So nothing here parses flags, prints, or reads the environment: what a front end
//! knows about its surroundings (TOKENCTL_TZ, whether a terminal watches) comes in the request.
//!
//! Each operation takes the database and the clock this call runs at (`Clock`, agreed with the
//! database by `clock::shared`). Reports are built here from what `db` reads, by pure
//! functions tested without a database. A denial is a `Decision`, never an error.
//!
//! A new operation goes in the module of its noun (or a new one), its statements in `db`.

pub mod admit;
pub mod alerts;
pub mod archive;
pub mod clock;
pub mod distribution;
pub mod limits;
pub mod logs;
pub mod monitor;
pub mod prices;
pub mod quota;
pub mod report;
pub mod reset;
pub mod status;
pub mod tokens;

use crate::error::OpError;

pub type OpResult<T> = Result<T, OpError>;

/// Every operation's future is `Send`, so a multi-threaded server can run it on any worker
/// thread: checked at compile time (this function is never called).
#[allow(dead_code)]
fn operations_are_send(db: &crate::db::Db, clock: &crate::domain::Clock) {
    fn send<T: Send>(_: T) {}
    let est = admit::Estimate::Tokens {
        estimated_tokens: "1".parse().expect("a count"),
    };
    let ai_type: crate::domain::input::AiType = "a".parse().expect("a name");
    let check = admit::CheckRequest {
        ai_type,
        estimate: est,
        user_id: None,
        model: None,
    };
    let reserve = admit::ReserveRequest {
        check: check.clone(),
        ttl: "1m".parse().expect("a ttl"),
    };
    let release = admit::ReleaseRequest {
        reservation_id: String::new(),
    };
    send(admit::check(db, clock, &check));
    send(admit::reserve(db, clock, &reserve));
    send(admit::release(db, clock, &release));
    send(status::status(db, clock, &Default::default()));
    send(limits::limits(db));
    send(prices::prices(db));
    send(alerts::alerts(db, clock, &Default::default()));
    send(alerts::active(db, clock, &Default::default()));
    send(distribution::distribution(db, clock, &Default::default()));
    send(quota::quota(
        db,
        clock,
        &quota::QuotaRequest {
            user_id: "u".into(),
        },
    ));
    send(report::report(db, clock, &Default::default()));
    send(archive::archive(db, &Default::default()));
    send(reset::reset(db, clock, &Default::default()));
    send(monitor::tick(db, clock));
    send(reset::monthly_reset(db, clock, &Default::default(), None));
    send(clock::shared(db, *clock, None));
    send(clock::config(db, clock, false));
}
