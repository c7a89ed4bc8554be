//! The shared vocabulary, at the bottom of the module graph: a cell's
//! coordinates, attempts and their outcomes, the run's record, the events
//! the runner emits, the binary's exit statuses, the bounds on user-set
//! numbers, and version numbers. Pure data and derivations; every other
//! module may use it, it uses none of them.

pub mod attempt;
pub mod cell;
pub mod events;
pub mod exit;
pub mod limits;
pub mod rate;
pub mod record;
pub mod version;

pub use attempt::*;
pub use cell::{Accel, AccelChoice, AxisError, CellIdError, CellKey, CgroupVersion, Driver, Field};
pub use events::{Event, EventSink, Notice, NullSink, VecSink};
pub use exit::{ExitStatus, Expectations};
pub use rate::{Rate, RateCmp, RateExpect, RateSummary};
pub use record::{CellRecord, Expect, RuleSource, RunMeta, RunSummary, Status, SCHEMA_VERSION};
