//! Standard output of the commands. A reader that goes away (`trailwatch rules list | head`)
//! is not an error: Rust ignores SIGPIPE, so a write to a closed pipe fails with `EPIPE`
//! (and `println!` would panic). Here such a write is taken as done and everything after it
//! is dropped, so the command runs to its end quietly and exits with the status it earned
//! (a failed rule test still exits 1).

use std::io::{self, Write};

/// A writer that stops writing, without an error, once its reader has closed the pipe.
pub struct PipeOut<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> PipeOut<W> {
    pub fn new(inner: W) -> Self {
        PipeOut {
            inner,
            closed: false,
        }
    }

    fn guard<T>(&mut self, r: io::Result<T>, done: T) -> io::Result<T> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            r => r,
        }
    }
}

impl<W: Write> Write for PipeOut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        self.guard(r, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.guard(r, ())
    }
}

/// Standard output, locked, for a command's results.
pub fn stdout() -> PipeOut<io::StdoutLock<'static>> {
    PipeOut::new(io::stdout().lock())
}

/// Does `e` come from writing to a closed pipe? (The last line of defence in `main`: output
/// that does not go through [`PipeOut`] ends the program quietly too.)
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails as a closed pipe does.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.got.len() >= self.room {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room - self.got.len());
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        let mut out = PipeOut::new(Pipe {
            got: Vec::new(),
            room: 6,
        });
        for i in 0..100 {
            writeln!(out, "line {i}").unwrap();
        }
        out.flush().unwrap();
        assert_eq!(out.inner.got, b"line 0");
    }

    #[test]
    fn other_errors_still_count() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(writeln!(PipeOut::new(Full), "x").is_err());
    }

    #[test]
    fn broken_pipe_is_found_in_the_error_chain() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("cannot write findings");
        assert!(is_broken_pipe(&e));
        let e = anyhow::Error::from(serde_json::Error::io(io::ErrorKind::BrokenPipe.into()));
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("no rules loaded")));
    }
}
