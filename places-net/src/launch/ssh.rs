//! The ssh launcher: the system's ssh client, and copying the executable to a host that lacks
//! it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{quote_all, NodeOptions};
use crate::error::NetError;

/// The ssh client this program uses: `PLACES_SSH` if set, else `ssh` from `PATH` (Racket's
/// `ssh-bin-path`).
pub fn ssh_bin_path() -> PathBuf {
    std::env::var_os("PLACES_SSH").map_or_else(|| PathBuf::from("ssh"), PathBuf::from)
}

/// `ssh [options] -- DEST`, ready for the remote command. A destination that begins with `-`
/// would be read as an option by some clients: it is refused.
pub(crate) fn ssh_command(dest: &str, opts: &NodeOptions) -> Result<Command, NetError> {
    let ssh = opts.ssh_bin.clone().unwrap_or_else(ssh_bin_path);
    if dest.starts_with('-') || dest.is_empty() {
        return Err(NetError::Launch {
            host: dest.to_owned(),
            exe: ssh.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an ssh destination must be a host name (it may not be empty or begin with `-`)",
            ),
        });
    }
    let mut c = Command::new(ssh);
    // Never prompt: a node start that needs a password fails with ssh's message instead.
    c.args(["-o", "BatchMode=yes"]);
    if let Some(port) = opts.ssh_port {
        c.arg("-p").arg(port.to_string());
    }
    if let Some(id) = &opts.ssh_identity {
        c.arg("-i").arg(id);
    }
    c.args(&opts.ssh_options).arg("--").arg(dest);
    Ok(c)
}

/// Copies `exe` to `dest` over ssh unless a copy of this build is there already (checked by its
/// SHA-256, every time); returns the path of the copy on that host. The copy is written under a
/// name of its own, checked, then renamed into place, so two programs shipping at once cannot
/// leave a torn file.
pub(crate) fn ship(dest: &str, exe: &Path, opts: &NodeOptions) -> Result<PathBuf, NetError> {
    use sha2::Digest;
    let launch_err = |source: std::io::Error| NetError::Launch {
        host: dest.to_owned(),
        exe: exe.display().to_string(),
        source,
    };
    let bytes = std::fs::read(exe).map_err(launch_err)?;
    let hash: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = exe.file_name().map_or_else(
        || "places-node".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let dir = format!(".cache/places/{}", &hash[..24]);
    let path = format!("{dir}/{name}");
    let q = |s: &str| quote_all(std::iter::once(s.to_owned()));
    let (qpath, qdir, qhash) = (q(&path)?, q(&dir)?, q(&hash)?);
    let script = format!(
        "set -e; command -v sha256sum >/dev/null || {{ echo 'the host has no sha256sum' >&2; exit 1; }}; \
         sum() {{ sha256sum \"$1\" | cut -d ' ' -f 1; }}; \
         if [ -x {qpath} ] && [ \"$(sum {qpath})\" = {qhash} ]; then exit 0; fi; \
         mkdir -p {qdir}; t=$(mktemp {qpath}.part.XXXXXX); trap 'rm -f \"$t\"' EXIT; \
         cat > \"$t\"; \
         [ \"$(sum \"$t\")\" = {qhash} ] || {{ echo 'the copy of the executable is corrupt' >&2; exit 1; }}; \
         chmod +x \"$t\"; mv -f \"$t\" {qpath}; trap - EXIT"
    );
    let mut c = ssh_command(dest, opts)?;
    let mut child = c
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(launch_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // When the copy is there already, the remote side does not read: a broken pipe here
        // is expected then.
        let _ = stdin.write_all(&bytes);
    }
    let out = child.wait_with_output().map_err(launch_err)?;
    if !out.status.success() {
        return Err(NetError::ExitedEarly {
            host: dest.to_owned(),
            status: out.status.to_string(),
            output: format!(
                "copying the executable failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    // Relative to the remote home directory, where ssh starts.
    Ok(PathBuf::from(path))
}
