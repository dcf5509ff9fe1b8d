//! One module per subcommand.

pub mod embed;
pub mod frames;
pub mod probe;
