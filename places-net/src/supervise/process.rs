//! Watching a process on a host (Racket's `supervise-process-at`).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::NetError;
use crate::launch::{quote_all, ssh_command, NodeOptions};

/// A process started by [`supervise_process_at`].
pub struct RemoteProcess {
    host: String,
    pid: u32,
    status: Arc<(Mutex<Option<i32>>, std::sync::Condvar)>,
}

/// Starts the command `argv` on `host` (directly on `localhost`, else through ssh as nodes are)
/// and watches it (Racket's `supervise-process-at`): when it ends, its exit is logged to the
/// root node (see `log_message`) and [`RemoteProcess::wait`] returns its status.
///
/// # Errors
///
/// [`NetError::Launch`] when the command cannot be started (or `argv` is empty).
pub fn supervise_process_at(
    host: &str,
    argv: &[&str],
    opts: &NodeOptions,
) -> Result<RemoteProcess, NetError> {
    let launch_err = |source: std::io::Error| NetError::Launch {
        host: host.to_owned(),
        exe: argv.join(" "),
        source,
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(launch_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        )));
    };
    let local = !host.contains('@') && (host == "localhost" || host == "127.0.0.1");
    let mut command = if local {
        let mut c = Command::new(program);
        c.args(args);
        c
    } else {
        let mut c = ssh_command(host, opts)?;
        c.arg(quote_all(argv.iter().map(|a| (*a).to_owned()))?);
        c
    };
    let mut child = command.stdin(Stdio::null()).spawn().map_err(launch_err)?;
    let pid = child.id();
    let status = Arc::new((Mutex::new(None), std::sync::Condvar::new()));
    let watch = status.clone();
    let who = format!("PROCESS {pid} on {host} ({})", argv.join(" "));
    std::thread::spawn(move || {
        let code = match child.wait() {
            Ok(s) => s.code().unwrap_or(-1),
            Err(_) => -1,
        };
        places_core::log_message(
            places_core::Severity::Info,
            format!("{who} exited with status {code}"),
        );
        let (lock, cvar) = &*watch;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(code);
        cvar.notify_all();
    });
    Ok(RemoteProcess {
        host: host.to_owned(),
        pid,
        status,
    })
}

impl RemoteProcess {
    /// The process id (on its host).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The host it runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Waits for the process to end and returns its exit status (-1 when killed by a signal).
    pub fn wait(&self) -> i32 {
        let (lock, cvar) = &*self.status;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(code) = *s {
                return code;
            }
            s = cvar.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        let (lock, cvar) = &*self.status;
        let s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (s, _) = cvar
            .wait_timeout_while(s, timeout, |s| s.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *s
    }
}

impl std::fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("host", &self.host)
            .field("pid", &self.pid)
            .finish()
    }
}
