//! Change announcements. In-process today (a broadcast channel); the same events can be
//! carried across replicas by the metadata backend later.

use crate::ApprovalStatus;

/// Something changed in the registry. Subscribers re-resolve their selectors on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A new version was registered.
    Registered { group: String, version: i64, status: ApprovalStatus },
    /// A version's approval status changed.
    StatusChanged { group: String, version: i64, status: ApprovalStatus },
    /// An alias now points at `version` (`None`: removed).
    AliasMoved { group: String, alias: String, version: Option<i64> },
}

impl RegistryEvent {
    /// The group the event is about.
    pub fn group(&self) -> &str {
        match self {
            RegistryEvent::Registered { group, .. }
            | RegistryEvent::StatusChanged { group, .. }
            | RegistryEvent::AliasMoved { group, .. } => group,
        }
    }
}
