//! What a client is told about a command that no consumer could apply: a
//! dead-lettered command settles as `failed` with one of these reasons, so
//! nothing accepted is ever left pending.

use crate::reason::Reason;
use crate::topics::dlq;

/// The reason and message of a command of type `command_type` that was
/// dead-lettered from `topic`, by whose fault: [`Reason::InvalidCommand`]
/// when the command itself is (undecodable, broken headers, data the
/// service's database refuses), else [`Reason::CommandFailed`].
pub fn of_dead_command(input_at_fault: bool, command_type: &str, topic: &str) -> (Reason, String) {
    let kept = dlq(topic);
    if input_at_fault {
        let message = format!(
            "the {command_type} command holds data that cannot be processed; correct the request and send it \
             again (the command is kept on {kept} for an operator)"
        );
        (Reason::InvalidCommand, message)
    } else {
        let message = format!(
            "the {command_type} command failed and was kept on {kept} for an operator; sending it again will \
             not help until they fixed the cause"
        );
        (Reason::CommandFailed, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_follows_the_fault_and_the_message_names_the_command_and_where_it_is_kept() {
        let (reason, message) = of_dead_command(true, "PlaceOrder", "orders.commands");
        assert_eq!(reason, Reason::InvalidCommand);
        assert!(message.contains("PlaceOrder") && message.contains("orders.commands.dlq"), "{message}");
        assert_eq!(of_dead_command(false, "PlaceOrder", "orders.commands").0, Reason::CommandFailed);
    }
}
