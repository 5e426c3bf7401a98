//! The data directory's safety at start-up: created 0700, every file in it 0600 (the process
//! umask is set to 077, so files SQLite and the store create later are private too), and the
//! open-file limit raised to what the system allows, so `--max-connections` can be met.

use std::io;
use std::path::Path;

/// Makes `dir` (and its parents) with mode 0700, and tightens what is already there.
pub fn prepare(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let mode = if kind.is_dir() {
                0o700
            } else if kind.is_file() {
                0o600
            } else {
                continue;
            };
            let current = entry.metadata()?.permissions().mode() & 0o777;
            if current != mode {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// This server's instance id, kept in `DIR/instance-id` so that a restarted server knows the
/// executions it owned; created on first start.
pub fn instance_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("instance-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) => write_instance_id(&path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => write_instance_id(&path),
        Err(e) => Err(e),
    }
}

fn write_instance_id(path: &Path) -> io::Result<String> {
    let id = nimbus_core::new_id();
    nimbus_iam::crypto::write_private(path, id.as_bytes()).map_err(io::Error::other)?;
    Ok(id)
}

/// Raises the soft limit of open files to the hard limit; returns the soft limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            let _ = setrlimit(Resource::Nofile, limit);
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    None
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_existing_data_dir_is_made_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("meta.db"), b"").unwrap();
        std::fs::set_permissions(dir.join("meta.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        super::prepare(&dir).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join("meta.db"))), (0o700, 0o600));
        std::fs::write(dir.join("later"), b"").unwrap();
        assert_eq!(mode(&dir.join("later")), 0o600, "the umask keeps new files private");
    }
}
