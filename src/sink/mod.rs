//! Where findings go: rendered messages, the durable outbox, SNS.

pub mod message;
pub(crate) mod outbox;
pub mod sns;
