//! End-to-end tests of the CLI: an in-process Warren on ephemeral ports, the verbs run
//! through the library entry point and through the real `warrenctl` binary. One test binary
//! (one link) with a module per area.

mod harness;

mod definitions;
mod errors;
mod lists;
mod policies;
mod queues;
mod users;
