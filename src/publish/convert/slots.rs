//! A counting limit on concurrent compressions, shared by every image of a publish. A slot is
//! held by a [`Permit`] and given back when the permit drops, also when the thread holding it
//! panics, so a failed compression never leaves the others waiting.

use std::sync::{Arc, Condvar, Mutex};

/// The free slots, and the condition their waiters sleep on.
#[derive(Debug)]
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One slot of [`Slots`], released on drop.
#[derive(Debug)]
pub struct Permit {
    slots: Arc<Slots>,
}

impl Slots {
    /// `n` slots (at least one).
    pub fn new(n: usize) -> Arc<Slots> {
        Arc::new(Slots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        })
    }

    /// One slot per core.
    pub fn per_core() -> Arc<Slots> {
        Slots::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Waits for a free slot and holds it until the permit drops.
    pub fn acquire(self: &Arc<Self>) -> Permit {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit {
            slots: Arc::clone(self),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.slots.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_holder_gives_its_slot_back() {
        let slots = Slots::new(1);
        let permit = slots.acquire();
        let worker = std::thread::spawn(move || {
            let _held = permit;
            panic!("a compression failed");
        });
        assert!(worker.join().is_err(), "the worker panicked");
        let (done, seen) = std::sync::mpsc::channel();
        let waiter = Arc::clone(&slots);
        std::thread::spawn(move || {
            let _again = waiter.acquire();
            let _ = done.send(());
        });
        seen.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the slot was released by the panicking holder");
    }

    #[test]
    fn slots_limit_holders() {
        let slots = Slots::new(2);
        let a = slots.acquire();
        let _b = slots.acquire();
        assert_eq!(*slots.free.lock().unwrap(), 0);
        drop(a);
        assert_eq!(*slots.free.lock().unwrap(), 1);
    }
}
