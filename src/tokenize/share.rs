//! Work on `n` independent items that the calling thread starts at once and rayon's workers join as they
//! wake: the way `rerank` tokenises its documents.
//!
//! Handing a few hundred microseconds of work to rayon (`par_iter`) costs the calling thread a sleep and
//! a wake-up, and the workers' own wake-ups: right after a GPU batch the workers are asleep, and waking them
//! was most of a 1 × 50 rerank's tokenisation on a 16-core host (0.30–0.39 ms in `xenc bench` where the
//! same pool, warm, takes 0.11–0.14 ms). Here the calling thread claims items from an atomic counter from
//! the first microsecond, one helper job is injected into the pool, and every helper that starts spawns
//! the next ones (only while items are left) before it claims items itself. So the calling thread is never
//! slower than alone by more than one injection, helpers that wake late find nothing and return, and the
//! calling thread waits only for items already claimed, never for a helper that has not started.
//!
//! Helper jobs outlive the call (a late one may run after it returned), so everything they touch is owned
//! by an `Arc`: the context (for `rerank`, the tokenizer, the query's piece and a copy of the documents'
//! text) and the result slots. A panic in `f` is caught where it happens and resumed on the calling
//! thread, as it would be without helpers.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Shared<C, T> {
    ctx: C,
    f: fn(&C, usize) -> T,
    /// The next unclaimed item.
    next: AtomicUsize,
    /// Items whose result is in its slot.
    done: AtomicUsize,
    slots: Box<[Mutex<Option<std::thread::Result<T>>>]>,
}

impl<C, T> Shared<C, T> {
    fn n(&self) -> usize {
        self.slots.len()
    }

    /// Claims and computes items until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n() {
                return;
            }
            let r = catch_unwind(AssertUnwindSafe(|| (self.f)(&self.ctx, i)));
            *self.slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            self.done.fetch_add(1, Ordering::Release);
        }
    }

    fn items_left(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.n()
    }
}

/// A helper job: spawns up to `more` further helpers (two subtrees, so wake-ups spread in a tree rather
/// than a chain) while items are left, then works.
fn helper<C, T>(shared: Arc<Shared<C, T>>, more: usize)
where
    C: Send + Sync + 'static,
    T: Send + 'static,
{
    if more > 0 && shared.items_left() {
        let left = (more - 1) / 2;
        let right = more - 1 - left;
        let s = shared.clone();
        rayon::spawn(move || helper(s, left));
        if right > 0 {
            let s = shared.clone();
            rayon::spawn(move || helper(s, right));
        }
    }
    shared.work();
}

/// `(0..n).map(|i| f(&ctx, i))`, in order, computed by the calling thread together with up to `helpers`
/// jobs on `pool` (None: the caller's current pool, rayon's global one outside any) that join as they start (see the module docs); a helper's
/// own helpers go to the pool it runs on. `helpers == 0` or `n < 2`: on the calling thread alone.
pub(crate) fn map_with_helpers<C, T>(
    pool: Option<&rayon::ThreadPool>,
    ctx: C,
    n: usize,
    helpers: usize,
    f: fn(&C, usize) -> T,
) -> Vec<T>
where
    C: Send + Sync + 'static,
    T: Send + 'static,
{
    let helpers = helpers.min(n.saturating_sub(1));
    if helpers == 0 {
        return (0..n).map(|i| f(&ctx, i)).collect();
    }
    let shared = Arc::new(Shared {
        ctx,
        f,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        slots: (0..n).map(|_| Mutex::new(None)).collect(),
    });
    let s = shared.clone();
    let first = move || helper(s, helpers - 1);
    match pool {
        Some(pool) => pool.spawn(first),
        None => rayon::spawn(first),
    }
    shared.work();
    // Every item is claimed; wait for those still being computed by helpers (a document at most each).
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < n {
        if spins < 1000 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
    shared
        .slots
        .iter()
        .map(|slot| {
            let r = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            match r.expect("every item was computed") {
                Ok(v) => v,
                Err(panic) => resume_unwind(panic),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::map_with_helpers;

    #[test]
    fn every_item_once_in_order_with_any_number_of_helpers() {
        for n in [0, 1, 2, 3, 50, 1000] {
            for helpers in [0, 1, 2, 15, 64] {
                let ctx: Vec<u64> = (0..n as u64).map(|i| i * 7 + 1).collect();
                let got = map_with_helpers(None, ctx, n, helpers, |c, i| (i, c[i] * 3));
                let want: Vec<_> = (0..n).map(|i| (i, (i as u64 * 7 + 1) * 3)).collect();
                assert_eq!(got, want, "n = {n}, helpers = {helpers}");
            }
        }
    }

    #[test]
    fn helpers_take_items_while_the_calling_thread_is_busy() {
        // The calling thread's items wait (up to 10 s) until an item has run on another thread, so the
        // test passes only if a helper started and claimed work; results still come back in order. With
        // a pool of its own, every helper item runs on that pool's threads.
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let own = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        );
        for pool in [None, Some(own)] {
            let ctx = (
                std::thread::current().id(),
                AtomicBool::new(false),
                pool.clone(),
            );
            let got = map_with_helpers(pool.as_deref(), ctx, 16, 3, |(caller, helped, pool), i| {
                if std::thread::current().id() == *caller {
                    let t0 = Instant::now();
                    while !helped.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(10)
                    {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    (i, false, true)
                } else {
                    helped.store(true, Ordering::Release);
                    let in_pool = pool
                        .as_ref()
                        .is_none_or(|p| p.current_thread_index().is_some());
                    (i, true, in_pool)
                }
            });
            let own = pool.is_some();
            assert_eq!(
                got.iter().map(|r| r.0).collect::<Vec<_>>(),
                (0..16).collect::<Vec<_>>()
            );
            assert!(
                got.iter().any(|r| r.1),
                "no item ran on a helper (own pool: {own})"
            );
            assert!(
                got.iter().all(|r| r.2),
                "a helper ran outside the model's pool"
            );
        }
    }

    #[test]
    fn a_panic_in_an_item_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            map_with_helpers(None, (), 40, 4, |_, i| {
                assert!(i != 33, "item 33 fails");
                i
            })
        });
        let msg = r.expect_err("the panic is resumed");
        let msg = (msg.downcast_ref::<&str>().copied())
            .or_else(|| msg.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        assert!(msg.contains("item 33 fails"), "{msg}");
    }
}
