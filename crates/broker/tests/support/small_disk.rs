//! A tmpfs of a few MiB mounted over a fresh directory: a disk that really fills up. Tests that
//! need one are skipped where the process may not mount, but never as root (CI is root).
//! Shared by the broker's tests and the server's end-to-end tests (`#[path]`).

pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(SmallDisk { dir });
        }
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        assert!(!root, "root could not mount a tmpfs for a full-disk test");
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file (`ballast`) until the disk is full. A write smaller than a page may still
    /// fit at the end of a file's last page: tests that need a write to fail make it large.
    #[allow(dead_code)] // not every test binary fills the disk itself
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("ballast"))
            .unwrap();
        for size in [64 * 1024, 4096, 1] {
            let chunk = vec![0u8; size];
            while f.write_all(&chunk).is_ok() {}
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
