//! The application roles of the Defender API's permission catalogue and what a caller holding
//! them may do.

use iocd_domain::Actor;
use iocd_store::Scope;

/// Application roles of the Defender API's permission catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads all of the tenant's indicators.
    ReadAll,
    /// Creates indicators; reads, updates and deletes only the ones it created.
    ReadWrite,
    /// Manages all of the tenant's indicators.
    ReadWriteAll,
    /// iocd's own: may use the emulator controls (`/_iocd/…`). Not a Defender role.
    IocdAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::ReadAll,
        Role::ReadWrite,
        Role::ReadWriteAll,
        Role::IocdAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadAll => "Ti.Read.All",
            Role::ReadWrite => "Ti.ReadWrite",
            Role::ReadWriteAll => "Ti.ReadWrite.All",
            Role::IocdAdmin => "Iocd.Admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles that may write (submit, import, delete).
pub const WRITE_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite];
/// Roles that may use the emulator controls (`/_iocd/…`).
pub const ADMIN_ROLES: &[Role] = &[Role::IocdAdmin];
/// Roles that may read.
pub const READ_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite, Role::ReadAll];

/// An authenticated caller of the API: an app of a tenant with its roles, and for a delegated
/// token the person the app acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: String,
    /// The application's client id (`createdBy` of an app's own calls).
    pub client_id: String,
    /// The application's display name (`createdByDisplayName` of an app's own calls).
    pub display_name: String,
    /// What the caller may do, as application roles. For a delegated call these are what both
    /// the token's scope and the user's role allow (see `TokenAuthenticator`).
    pub roles: Vec<Role>,
    /// The signed-in user of a delegated token.
    pub user: Option<SignedInUser>,
}

/// The person a delegated token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInUser {
    /// `upn`: `createdBy` and `lastUpdatedBy` of what they write.
    pub upn: String,
    /// `name`: `createdByDisplayName`.
    pub name: String,
    /// `oid`.
    pub object_id: String,
}

/// The caller holds none of the roles an operation requires (a 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_missing(required, *delegated))]
pub struct MissingRoles {
    pub required: Vec<Role>,
    /// A delegated call: the user's role (or the token's scope) is what falls short.
    pub delegated: bool,
}

fn describe_missing(required: &[Role], delegated: bool) -> String {
    if delegated {
        let user_roles = if required.contains(&Role::ReadAll) {
            "Iocd.Indicators.Read, Iocd.Indicators.Manage or Iocd.Admin"
        } else {
            "Iocd.Indicators.Manage or Iocd.Admin"
        };
        return format!(
            "The signed-in user is not allowed to do this: a delegated call needs the scope Ti.ReadWrite and the user role {user_roles}."
        );
    }
    format!(
        "Missing application roles. API required roles: {}",
        required
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl Caller {
    /// Refuses unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), MissingRoles> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        Err(MissingRoles {
            required: roles.to_vec(),
            delegated: self.user.is_some(),
        })
    }

    /// The indicators this caller may read: all of the tenant's with `Ti.Read.All` or
    /// `Ti.ReadWrite.All`, otherwise only those it created.
    pub fn read_scope(&self) -> Scope {
        self.scope(self.roles.contains(&Role::ReadAll) || self.roles.contains(&Role::ReadWriteAll))
    }

    /// The indicators this caller may change: all of the tenant's with `Ti.ReadWrite.All`,
    /// otherwise only those it created.
    pub fn write_scope(&self) -> Scope {
        self.scope(self.roles.contains(&Role::ReadWriteAll))
    }

    fn scope(&self, tenant_wide: bool) -> Scope {
        Scope {
            tenant_id: self.tenant_id.clone(),
            owner: if tenant_wide {
                None
            } else {
                Some(self.actor_id().to_string())
            },
        }
    }

    /// Who writes are recorded as: the user's UPN for a delegated call (as the real service
    /// shows portal and delegated submissions), otherwise the app's client id.
    fn actor_id(&self) -> &str {
        self.user.as_ref().map_or(&self.client_id, |u| &u.upn)
    }

    pub fn actor(&self) -> Actor {
        Actor::new(
            self.actor_id(),
            self.user
                .as_ref()
                .map_or_else(|| self.display_name.clone(), |u| u.name.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("ti.readwrite"), None);
    }

    #[test]
    fn a_missing_role_names_every_role_that_would_do() {
        let reader = Caller {
            tenant_id: "t".into(),
            client_id: "c".into(),
            display_name: "d".into(),
            roles: vec![Role::ReadAll],
            user: None,
        };
        assert!(reader.require(READ_ROLES).is_ok());
        let refusal = reader.require(WRITE_ROLES).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "Missing application roles. API required roles: Ti.ReadWrite.All, Ti.ReadWrite"
        );
        assert_eq!(reader.read_scope().owner, None);
        assert_eq!(reader.write_scope().owner.as_deref(), Some("c"));
    }

    #[test]
    fn a_delegated_caller_writes_as_the_user() {
        let caller = Caller {
            tenant_id: "t".into(),
            client_id: "app".into(),
            display_name: "The App".into(),
            roles: vec![Role::ReadWrite],
            user: Some(SignedInUser {
                upn: "alice@contoso.example".into(),
                name: "Alice".into(),
                object_id: "o".into(),
            }),
        };
        let actor = caller.actor();
        assert_eq!(
            (actor.id.as_str(), actor.display_name.as_str()),
            ("alice@contoso.example", "Alice")
        );
        assert_eq!(
            caller.write_scope().owner.as_deref(),
            Some("alice@contoso.example")
        );
        let refusal = caller.require(&[Role::ReadWriteAll]).unwrap_err();
        assert!(
            refusal.to_string().contains("Iocd.Indicators.Manage"),
            "{refusal}"
        );
    }
}
