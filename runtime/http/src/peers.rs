//! Spreading connections over the processes that accept from one socket.
//!
//! A new connection wakes every process waiting in `accept`, and the first to
//! run takes it; in a burst (a client pool connecting at once) the first one
//! woken takes nearly all of them and the other processes idle. So processes
//! sharing a socket publish how many connections each holds in a small table
//! in shared memory (a memory file the supervisor hands to every worker), and
//! one holding more than a peer that is accepting waits a moment before it
//! accepts again, leaving the next connections to that peer.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use memmap2::MmapMut;

/// A slot whose process is not accepting (starting, stopping, or gone).
pub const NOT_ACCEPTING: u32 = u32::MAX;

/// How many more connections than a peer a process may hold before it waits.
const SLACK: u32 = 1;

/// This process's view of the shared table: one `u32` per slot.
pub struct Peers {
    map: MmapMut,
    slot: usize,
    /// Set once this process stops accepting: connections still closing must
    /// not make it look like it accepts again.
    withdrawn: AtomicBool,
}

impl Peers {
    /// Maps `table` (a multiple of 4 bytes, one slot per process) and takes `slot`.
    pub fn open(table: &File, slot: usize) -> io::Result<Self> {
        // SAFETY: the file is a table of u32 counters that every process only
        // reads and writes whole, through atomics; its size never changes.
        let map = unsafe { MmapMut::map_mut(table)? };
        if map.len() % 4 != 0 || slot >= map.len() / 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("slot {slot} is outside a {}-byte table", map.len()),
            ));
        }
        Ok(Peers {
            map,
            slot,
            withdrawn: AtomicBool::new(false),
        })
    }

    fn table(&self) -> &[AtomicU32] {
        // SAFETY: the mapping is page-aligned, its length a multiple of 4 (checked
        // in `open`), and lives as long as `self`.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU32>(), self.map.len() / 4)
        }
    }

    /// Publishes how many connections this process holds.
    pub fn publish(&self, open: usize) {
        if self.withdrawn.load(Ordering::Relaxed) {
            return;
        }
        let open = u32::try_from(open).unwrap_or(NOT_ACCEPTING - 1);
        self.table()[self.slot].store(open, Ordering::Relaxed);
    }

    /// This process accepts no more connections.
    pub fn withdraw(&self) {
        self.withdrawn.store(true, Ordering::Relaxed);
        self.table()[self.slot].store(NOT_ACCEPTING, Ordering::Relaxed);
    }

    /// Whether an accepting peer holds fewer connections than `open` by more
    /// than the slack, and should take the next one.
    pub fn ahead_of_a_peer(&self, open: usize) -> bool {
        let open = u32::try_from(open).unwrap_or(u32::MAX);
        self.table().iter().enumerate().any(|(i, count)| {
            let count = count.load(Ordering::Relaxed);
            i != self.slot && count != NOT_ACCEPTING && count.saturating_add(SLACK) < open
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn table(slots: usize) -> File {
        let mut file = tempfile();
        file.write_all(&vec![0xFF; slots * 4]).unwrap();
        file
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!(
            "spikard-peers-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn a_process_ahead_of_an_accepting_peer_waits() {
        let file = table(3);
        let (a, b) = (
            Peers::open(&file, 0).unwrap(),
            Peers::open(&file, 1).unwrap(),
        );
        // Slot 2 is not accepting: it never counts.
        a.publish(5);
        assert!(!a.ahead_of_a_peer(5));
        b.publish(3);
        assert!(a.ahead_of_a_peer(5));
        assert!(!a.ahead_of_a_peer(4)); // within the slack
        assert!(!b.ahead_of_a_peer(3));
        b.withdraw();
        assert!(!a.ahead_of_a_peer(50));
        b.publish(0); // closing connections after withdrawing publish nothing
        assert!(!a.ahead_of_a_peer(50));
    }

    #[test]
    fn slots_outside_the_table_are_refused() {
        assert!(Peers::open(&table(2), 2).is_err());
    }
}
