//! The emitter's targeting options, shared by typed emitters, the publish API and delivery.

use crate::role::RoleMask;

/// The emitter's broadcast options (the reference's "Broadcasting Options").
///
/// Options only narrow: `roles` intersects the event's roles, `user_ids` restricts recipients to
/// those users, the exclusions remove recipients. `namespace` chooses which namespace's subscribers
/// are addressed; it never changes which roles may see the event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitOptions {
    /// Only these roles (intersected with the event's roles).
    pub roles: Option<RoleMask>,
    /// Only these users.
    pub user_ids: Option<Vec<String>>,
    /// Never these users.
    pub exclude_user_ids: Vec<String>,
    /// Never these connections.
    pub exclude_session_ids: Vec<String>,
    /// Address this namespace's subscribers instead of the event's own namespace.
    pub namespace: Option<&'static str>,
}
