//! Which action wins when several indicators of equal standing match one observable. The
//! orders are Defender's where its docs give one, and written down in docs/compatibility.md
//! ("Matching") where they do not.

use crate::enums::Action;

/// Rank among equally specific network indicators (URL, domain, IP): higher wins.
/// Defender documents Allow > Warn > Block; Audit only observes, so it yields to any
/// enforcing action. The legacy actions sit with what they do: `AlertAndBlock` and
/// `BlockAndRemediate` block, `Alert` audits. Within a rank the stronger-named one wins, so
/// the answer does not depend on insertion order.
pub fn network_rank(action: Action) -> u8 {
    match action {
        Action::Allowed => 7,
        Action::Warn => 6,
        Action::BlockAndRemediate => 5,
        Action::AlertAndBlock => 4,
        Action::Block => 3,
        Action::Audit => 2,
        Action::Alert => 1,
    }
}

/// Rank among file (and certificate) indicators of the same hash strength and scope: higher
/// wins. Defender's file conflict order puts "block/warn file IoC" above "allow file IoC";
/// Audit and the legacy Alert do not enforce and come last.
pub fn file_rank(action: Action) -> u8 {
    match action {
        Action::BlockAndRemediate => 7,
        Action::AlertAndBlock => 6,
        Action::Block => 5,
        Action::Warn => 4,
        Action::Allowed => 3,
        Action::Audit => 2,
        Action::Alert => 1,
    }
}

/// Actions that stop the connection or the file outright: what a block list carries by
/// default. `Warn` lets the user click through, which a firewall or resolver cannot offer, so
/// feeds carry it only when asked (`action=Warn`).
pub fn is_blocking(action: Action) -> bool {
    matches!(
        action,
        Action::Block | Action::BlockAndRemediate | Action::AlertAndBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_total_orders_over_every_action() {
        for rank in [network_rank as fn(Action) -> u8, file_rank] {
            let mut seen: Vec<u8> = Action::ALL.iter().map(|a| rank(*a)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), Action::ALL.len());
        }
        assert!(network_rank(Action::Allowed) > network_rank(Action::Warn));
        assert!(network_rank(Action::Warn) > network_rank(Action::Block));
        assert!(network_rank(Action::Block) > network_rank(Action::Audit));
        assert!(file_rank(Action::Block) > file_rank(Action::Allowed));
        assert!(file_rank(Action::Warn) > file_rank(Action::Allowed));
    }
}
