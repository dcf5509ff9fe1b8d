//! Printing that never panics.
//!
//! A command's results go to stdout through [`print`], which turns a write error into a
//! typed [`StdoutError`]: a reader that went away (`reelsmith probe --json v.mp4 | head -c1`)
//! ends the command quietly, anything else (`> /dev/full`, a closed stdout) is an error
//! that says what to do. (A process started with stdout closed, `>&-`, gets `/dev/null`
//! there from Rust's runtime, so its results are discarded like with `> /dev/null`, and no
//! file the run opens can take descriptor 1.) Messages for the user go to stderr through [`note!`], which
//! ignores write errors: a full or closed stderr must not turn a finished run into a
//! failure, let alone a panic (`eprintln!` panics).

use std::io::{self, Write};

/// Standard output could not take the results.
#[derive(Debug, thiserror::Error)]
pub enum StdoutError {
    /// The reader of stdout closed it (a broken pipe): the command stops quietly.
    #[error("standard output was closed by the program reading it")]
    Closed,
    /// The results could not be formatted (a bug: please report it).
    #[error("cannot print the results ({0}); this is a bug, please report it")]
    Format(io::Error),
    /// Writing failed otherwise (a full disk, a file-size limit).
    #[error(
        "cannot write the results to standard output ({0}); redirect it to a file on a disk \
         with free space, or to a program that reads it"
    )]
    Write(io::Error),
}

impl From<io::Error> for StdoutError {
    fn from(e: io::Error) -> Self {
        if is_broken_pipe(&e) {
            StdoutError::Closed
        } else if matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
        ) {
            StdoutError::Format(e)
        } else {
            StdoutError::Write(e)
        }
    }
}

/// Whether `e`, or an I/O error it wraps (a CSV writer wraps them), is a broken pipe.
fn is_broken_pipe(e: &io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        cause = if let Some(e) = c.downcast_ref::<io::Error>() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
            // The error an I/O error wraps (its `source` skips it).
            e.get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static))
        } else if let Some(csv::ErrorKind::Io(e)) = c.downcast_ref::<csv::Error>().map(|e| e.kind())
        {
            Some(e)
        } else {
            c.source()
        };
    }
    false
}

/// Writes a command's results to stdout through `write`, buffered and flushed at the end.
pub fn print(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), StdoutError> {
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let result = write(&mut w).and_then(|()| w.flush());
    if result.is_err() {
        // Drop the unwritten rest instead of trying again when the writer is dropped.
        let _ = w.into_parts();
    }
    result.map_err(StdoutError::from)
}

/// `println!` to stderr that ignores write errors (a full or closed stderr).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use note;

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that went away.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_is_quiet_and_other_errors_say_what_to_do() {
        let closed = StdoutError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, StdoutError::Closed));
        // A CSV writer hands a broken pipe back wrapped in its own error.
        let mut w = csv::Writer::from_writer(Broken);
        let wrapped: io::Error = w.write_record(["a"; 9000]).unwrap_err().into();
        assert!(matches!(StdoutError::from(wrapped), StdoutError::Closed));
        let full = StdoutError::from(io::Error::from_raw_os_error(28));
        let msg = full.to_string();
        assert!(matches!(full, StdoutError::Write(_)), "{msg}");
        assert!(
            msg.contains("standard output") && msg.contains("redirect it"),
            "{msg}"
        );
        // The OS error is in the message, not repeated as a source.
        assert!(std::error::Error::source(&full).is_none());
        // A value JSON cannot hold is not blamed on stdout.
        let e: io::Error = serde_json::from_str::<u8>("x").unwrap_err().into();
        assert!(matches!(StdoutError::from(e), StdoutError::Format(_)));
    }
}
