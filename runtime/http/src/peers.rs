//! Spreading connections over the processes that accept from one socket.
//!
//! A new connection wakes every process waiting in `accept`, and the first to
//! run takes it; in a burst (a client pool connecting at once) the first one
//! woken takes nearly all of them and the other processes idle. So processes
//! sharing a socket publish how many connections each holds in a small table
//! in shared memory (a memory file the supervisor hands to every worker), and
//! one holding more than a peer that is accepting waits a moment before it
//! accepts again, leaving the next connections to that peer.
//!
//! A peer counts only while it is alive: each process stamps its slot with a
//! heartbeat from its serving thread every [`HEARTBEAT`]. A worker whose thread
//! is blocked (a handler that never yields) cannot take connections, and after
//! [`STALE`] without a beat the others stop leaving connections to it.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use memmap2::MmapMut;

/// A slot whose process is not accepting (starting, stopping, or gone).
pub const NOT_ACCEPTING: u32 = u32::MAX;

/// How many more connections than a peer a process may hold before it waits.
const SLACK: u32 = 1;

/// How often a process stamps its slot, and after how long without a stamp it
/// no longer counts as a peer.
pub const HEARTBEAT: Duration = Duration::from_millis(10);
const STALE: u32 = 50;

/// Bytes per slot: the connection count, then the heartbeat (milliseconds of
/// `CLOCK_MONOTONIC`, which every process on the machine shares, wrapping).
pub const SLOT_BYTES: usize = 8;

/// This process's view of the shared table: per slot, two `u32`s.
pub struct Peers {
    map: MmapMut,
    slot: usize,
    /// Set once this process stops accepting: connections still closing must
    /// not make it look like it accepts again.
    withdrawn: AtomicBool,
}

impl Peers {
    /// Maps `table` ([`SLOT_BYTES`] per process) and takes `slot`.
    pub fn open(table: &File, slot: usize) -> io::Result<Self> {
        // SAFETY: the file is a table of u32 counters that every process only
        // reads and writes whole, through atomics; its size never changes.
        let map = unsafe { MmapMut::map_mut(table)? };
        if map.len() % SLOT_BYTES != 0 || slot >= map.len() / SLOT_BYTES {
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
        self.table()[2 * self.slot].store(open, Ordering::Relaxed);
    }

    /// Stamps this process's slot: it is alive. Called every [`HEARTBEAT`] from
    /// the thread that accepts.
    pub fn beat(&self) {
        self.table()[2 * self.slot + 1].store(now_ms(), Ordering::Relaxed);
    }

    /// This process accepts no more connections.
    pub fn withdraw(&self) {
        self.withdrawn.store(true, Ordering::Relaxed);
        self.table()[2 * self.slot].store(NOT_ACCEPTING, Ordering::Relaxed);
    }

    /// Whether a live, accepting peer holds fewer connections than `open` by
    /// more than the slack, and should take the next one.
    pub fn ahead_of_a_peer(&self, open: usize) -> bool {
        let open = u32::try_from(open).unwrap_or(u32::MAX);
        let now = now_ms();
        self.table().chunks_exact(2).enumerate().any(|(i, slot)| {
            let count = slot[0].load(Ordering::Relaxed);
            let alive = now.wrapping_sub(slot[1].load(Ordering::Relaxed)) <= STALE;
            i != self.slot && count != NOT_ACCEPTING && alive && count.saturating_add(SLACK) < open
        })
    }
}

/// Milliseconds of `CLOCK_MONOTONIC`, wrapping at `u32`.
fn now_ms() -> u32 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn table(slots: usize) -> File {
        let mut file = tempfile();
        let mut slot = vec![0xFF; 4];
        slot.extend_from_slice(&[0; 4]);
        file.write_all(&slot.repeat(slots)).unwrap();
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
        a.beat();
        assert!(!a.ahead_of_a_peer(5));
        b.publish(3);
        // Not yet alive: a peer that never beat does not count.
        assert!(!a.ahead_of_a_peer(5));
        b.beat();
        assert!(a.ahead_of_a_peer(5));
        assert!(!a.ahead_of_a_peer(4)); // within the slack
        assert!(!b.ahead_of_a_peer(3));
        b.withdraw();
        assert!(!a.ahead_of_a_peer(50));
        b.publish(0); // closing connections after withdrawing publish nothing
        assert!(!a.ahead_of_a_peer(50));
    }

    #[test]
    fn a_peer_whose_heartbeat_stopped_is_not_waited_for() {
        let file = table(2);
        let (a, b) = (
            Peers::open(&file, 0).unwrap(),
            Peers::open(&file, 1).unwrap(),
        );
        b.publish(0);
        b.beat();
        assert!(a.ahead_of_a_peer(5));
        // b's thread is blocked: it beats no more.
        std::thread::sleep(Duration::from_millis(u64::from(STALE) + 20));
        assert!(!a.ahead_of_a_peer(5));
        b.beat();
        assert!(a.ahead_of_a_peer(5));
    }

    #[test]
    fn slots_outside_the_table_are_refused() {
        assert!(Peers::open(&table(2), 2).is_err());
    }
}
