//! Where findings go: rendered messages, the durable outbox, SNS.

pub mod message;
pub mod outbox;
pub mod sns;
