//! Where findings go: rendered messages, the durable outbox, SNS, lines of text.

pub mod message;
pub(crate) mod outbox;
pub mod sns;
pub mod text;
