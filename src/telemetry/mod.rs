//! Usage sampling, the event sink (`--events`), audit logs and diagnostic logging.

pub mod audit_log;
