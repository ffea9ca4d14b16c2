//! Domain types: pure values and rules, no I/O. Everything here is unit-tested without a database.

pub mod alert;
pub mod burn;
pub mod clock;
pub mod count;
pub mod decision;
pub mod estimate;
pub mod input;
pub mod level;
pub mod limits;
pub mod money;
pub mod number;
pub mod pacing;
pub mod pricing;
pub mod report;
pub mod scope;
pub mod usage;
pub mod validate;

pub use clock::{Clock, ClockSource, Periods};
pub use decision::{decide, Decision, Reason};
pub use level::Level;
pub use limits::{GlobalLimits, LimitRow, Limits, ScopeLimits};
pub use money::Usd;
pub use number::thousands;
pub use scope::{Scope, Who};
pub use usage::{Counter, ScopeUsage, Snapshot};
