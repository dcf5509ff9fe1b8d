//! One module per subcommand.

pub mod embed;
pub mod frames;
pub mod highlights;
pub mod keyframes;
pub mod probe;
pub mod score;
pub mod segments;
pub mod shots;
