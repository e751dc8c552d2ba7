//! Output files that appear whole or not at all: written under a temporary name beside the
//! destination and renamed into place only when complete. A failure or interruption leaves
//! nothing under the final name, and an input is never overwritten.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set by the first Ctrl-C, SIGTERM or SIGHUP once [`handle_interrupts`] is installed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The temporary files of outputs being written, for the signal handler to remove. An entry
/// whose [`AtomicFile`] was dropped names a file already removed; removing it again is harmless.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Installs the process's handler for Ctrl-C, SIGTERM and SIGHUP (what `timeout`, systemd and
/// Kubernetes send). With `graceful`, the first signal only sets [`interrupted`], so that loops
/// which check it stop and drop their unfinished outputs; without it, or at a second signal,
/// the handler removes every unfinished output's temporary file and exits with status 130.
/// (In WebAssembly there are no signals: nothing to install.)
pub fn handle_interrupts(graceful: bool) {
    #[cfg(not(target_arch = "wasm32"))]
    let _ = ctrlc::set_handler(move || {
        if INTERRUPTED.swap(true, Ordering::SeqCst) || !graceful {
            remove_unfinished();
            std::process::exit(130);
        }
    });
    #[cfg(target_arch = "wasm32")]
    let _ = graceful;
}

/// Whether a signal asked the process to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn remove_unfinished() {
    let paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    for path in paths.iter() {
        // A file, or a staged directory.
        let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
    }
}

fn register_unfinished(path: &Path) {
    UNFINISHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

fn unregister_unfinished(path: &Path) {
    UNFINISHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// Temporary outputs of this naming (`.NAME.*.partial`) left in `dir` by a process that was
/// killed before it could remove them: older than this, they are removed on the next write
/// there. A live writer's file is younger (it is being written).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes stale temporary outputs for `name` in `dir` (see [`STALE_AFTER`]).
fn remove_stale(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if !(file_name.starts_with(&prefix) && file_name.ends_with(".partial")) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a > STALE_AFTER) {
            let path = entry.path();
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
    }
}

/// A directory written under a temporary name beside its destination and put in its place
/// whole: a reader sees the old directory or the new one, never a mix. Dropped before
/// [`commit`](Self::commit), or interrupted, it is removed.
pub struct StagedDir {
    temp: Option<tempfile::TempDir>,
    destination: PathBuf,
}

impl StagedDir {
    pub fn create(destination: &Path) -> Result<Self, OutputError> {
        let (parent, name) = parent_and_name(destination);
        std::fs::create_dir_all(&parent).map_err(|cause| OutputError::Temp {
            dir: parent.clone(),
            cause,
        })?;
        remove_stale(&parent, &name);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempdir_in(&parent)
            .map_err(|cause| OutputError::Temp { dir: parent, cause })?;
        register_unfinished(temp.path());
        Ok(Self {
            temp: Some(temp),
            destination: destination.to_path_buf(),
        })
    }

    /// Where to write the directory's files.
    pub fn path(&self) -> &Path {
        self.temp.as_ref().expect("not committed").path()
    }

    /// Puts the staged directory in place: renamed there if nothing (or an empty directory)
    /// is, else atomically exchanged with the directory there (Linux), whose old contents are
    /// then removed.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let temp = self.temp.take().expect("committed once").keep();
        unregister_unfinished(&temp);
        let persist = |cause| OutputError::Persist {
            path: self.destination.clone(),
            cause,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(&temp, perms).map_err(persist)?;
        }
        if std::fs::rename(&temp, &self.destination).is_ok() {
            return Ok(());
        }
        exchange(&temp, &self.destination).map_err(|e| {
            let _ = std::fs::remove_dir_all(&temp);
            persist(e)
        })?;
        // `temp` now holds the old directory.
        std::fs::remove_dir_all(&temp).map_err(persist)
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            unregister_unfinished(temp.path());
        }
    }
}

/// Swaps two directories in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are NUL-terminated paths that live across the call.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Swaps two directories: elsewhere, in two renames (for a moment neither is in place).
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let aside = a.with_extension("old");
    std::fs::rename(b, &aside)?;
    std::fs::rename(a, b)?;
    std::fs::rename(&aside, a)
}

/// The directory a destination is in (`.` for a bare name) and its file name.
fn parent_and_name(destination: &Path) -> (PathBuf, String) {
    let dir = destination
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// Why an output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0} already exists (use --force to replace it)")]
    Exists(PathBuf),
    #[error("output {0} is the input file; choose another name")]
    SameAsInput(PathBuf),
    #[error("cannot create a temporary file in {dir}")]
    Temp {
        dir: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("{dir} holds files that are not its ladder's ({name}): write the ladder to a new or empty directory")]
    NotALadder { dir: PathBuf, name: String },
    #[error("cannot move the finished output to {path}")]
    Persist {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
}

/// Best-effort absolute form of a path that may not exist yet.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Refuses an output that is one of the inputs, or that exists (unless `force`).
pub fn check_output(output: &Path, inputs: &[&Path], force: bool) -> Result<(), OutputError> {
    let out = resolved(output);
    if inputs.iter().any(|i| resolved(i) == out) {
        return Err(OutputError::SameAsInput(output.to_path_buf()));
    }
    if !force && output.exists() {
        return Err(OutputError::Exists(output.to_path_buf()));
    }
    Ok(())
}

/// Writes to an [`AtomicFile`]; an error says which output it was writing.
pub struct OutputWriter<'a> {
    file: &'a mut File,
    destination: &'a Path,
}

impl OutputWriter<'_> {
    fn name_destination(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("writing {}: {e}", self.destination.display()),
        )
    }
}

impl std::io::Seek for OutputWriter<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.file.seek(to).map_err(|e| self.name_destination(e))
    }
}

impl std::io::Write for OutputWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| self.name_destination(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| self.name_destination(e))
    }
}

/// A file being written under a temporary name next to its destination.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    destination: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file in the destination's directory (so the rename is atomic).
    pub fn create(destination: &Path) -> Result<Self, OutputError> {
        let (dir, name) = parent_and_name(destination);
        remove_stale(&dir, &name);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|cause| OutputError::Temp { dir, cause })?;
        register_unfinished(temp.path());
        Ok(Self {
            temp,
            destination: destination.to_path_buf(),
        })
    }

    /// The temporary path, for writers that open files by name.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The file to write, as a writer whose errors name the destination (a full disk says
    /// which output it stopped).
    pub fn file(&mut self) -> OutputWriter<'_> {
        OutputWriter {
            file: self.temp.as_file_mut(),
            destination: &self.destination,
        }
    }

    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Flushes to disk and renames into place, readable by others like any new file.
    pub fn commit(self) -> Result<(), OutputError> {
        let path = self.destination.clone();
        unregister_unfinished(self.temp.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(self.temp.path(), perms).map_err(|cause| {
                OutputError::Persist {
                    path: path.clone(),
                    cause,
                }
            })?;
        }
        self.temp
            .as_file()
            .sync_all()
            .map_err(|cause| OutputError::Persist {
                path: path.clone(),
                cause,
            })?;
        self.temp
            .persist(&self.destination)
            .map(drop)
            .map_err(|e| OutputError::Persist {
                path,
                cause: e.error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn nothing_appears_until_commit_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.file().write_all(b"partial").unwrap();
            assert!(!dest.exists());
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left behind"
        );
        let mut f = AtomicFile::create(&dest).unwrap();
        f.file().write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
    }

    #[test]
    fn refuses_input_as_output_and_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mp4");
        std::fs::write(&input, b"x").unwrap();
        let sneaky = dir.path().join(".").join("in.mp4");
        assert!(matches!(
            check_output(&sneaky, &[&input], true),
            Err(OutputError::SameAsInput(_))
        ));
        let other = dir.path().join("other.aez");
        std::fs::write(&other, b"y").unwrap();
        assert!(matches!(
            check_output(&other, &[&input], false),
            Err(OutputError::Exists(_))
        ));
        assert!(check_output(&other, &[&input], true).is_ok());
    }
}
