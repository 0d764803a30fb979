//! The drift of each new view, worked out from the last one's ([`shared::drift::follow`]: only the names whose
//! containers changed are compared with the snapshot again), against the baseline status-api keeps. Its tests,
//! the followed drift held against the drift of everything over random changes, are with it in `shared`.

use shared::drift::follow::Members;
use shared::SnapshotMember;

use crate::baseline::Baseline;

/// The last view's drift, followed from one view to the next.
pub type Drifts = shared::drift::follow::Drifts<Baseline>;

impl Members for Baseline {
    fn members(&self) -> &[SnapshotMember] {
        Baseline::members(self)
    }
}
