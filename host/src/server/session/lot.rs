//! The parking lot: where plain connections that have stayed at rest wait
//! outside tokio, with no task and no tokio registration of their own.
//!
//! A lot is one epoll instance of its own, registered in its runtime's
//! reactor, a slab of parked records (slab key = epoll token) and one task
//! that serves them; the server makes one per accept loop, so one per
//! serving thread. A parked record leaves the lot (is *resumed*: it
//! becomes a task again) when its socket turns readable or hangs up, or
//! when anything wakes the connection: the waker stored for it while
//! parked names its lot and slot in its data pointer, so it costs no
//! allocation.
//!
//! Which connections park is the lot's users' business; the lot also keeps
//! the clock that says when: its *epoch* moves on every `delay`, and the
//! tasks of connections at rest enrol to be woken at the next tick, so a
//! task can tell it has been at rest for a whole tick without a timer of
//! its own.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use rustix::event::{Timespec, epoll};
use slab::Slab;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::{MissedTickBehavior, interval_at};

/// Readiness events taken from the lot's epoll per wait.
const EVENTS: usize = 256;

/// What a lot holds: a record with a socket, which knows how to go back
/// to work.
pub(crate) trait Parkable: AsFd + Send + Sized + 'static {
    /// Leaves the lot (on the lot's runtime): becomes a task again.
    fn resume(self, lot: &Arc<Lot<Self>>);
}

pub(crate) struct Lot<P> {
    /// The lot's epoll, registered in its runtime's reactor.
    epoll: AsyncFd<OwnedFd>,
    /// The lot's key in [`LOTS`]; its wakers carry it in 16 bits.
    key: usize,
    delay: Duration,
    slots: Mutex<Slots<P>>,
    /// Slots whose wakers fired (key and generation), for the lot's task.
    woken: Mutex<Vec<u64>>,
    notify: Notify,
    /// Wakers of tasks at rest, woken at the next tick.
    resting: Mutex<Slab<Waker>>,
    /// Ticks so far; changes only under `resting`'s lock.
    epoch: AtomicU32,
}

struct Slots<P> {
    parked: Slab<Slot<P>>,
    /// Tells a slot's later tenants from its earlier ones, whose wakers
    /// may still be stored somewhere.
    next_generation: u16,
}

struct Slot<P> {
    value: P,
    generation: u16,
}

/// A slot's identity in a waker's data and an epoll token: lot (16 bits),
/// generation (16), slab key (32).
fn encode(lot: u16, generation: u16, key: u32) -> u64 {
    (u64::from(lot) << 48) | (u64::from(generation) << 32) | u64::from(key)
}

fn decode(bits: u64) -> (u16, u16, u32) {
    ((bits >> 48) as u16, (bits >> 32) as u16, bits as u32)
}

/// Where a slot's waker finds its lot.
trait Wakeable: Send + Sync {
    fn woken(&self, bits: u64);
}

/// Every live lot of the process, by id.
static LOTS: Mutex<Slab<Weak<dyn Wakeable>>> = Mutex::new(Slab::new());

fn lots() -> MutexGuard<'static, Slab<Weak<dyn Wakeable>>> {
    LOTS.lock().unwrap_or_else(|e| e.into_inner())
}

static SLOT_WAKER: RawWakerVTable =
    RawWakerVTable::new(clone_slot_waker, wake_slot, wake_slot, |_| {});

fn clone_slot_waker(data: *const ()) -> RawWaker {
    RawWaker::new(data, &SLOT_WAKER)
}

fn wake_slot(data: *const ()) {
    let bits = data as usize as u64;
    let (lot, _, _) = decode(bits);
    let lot = lots().get(usize::from(lot)).and_then(Weak::upgrade);
    if let Some(lot) = lot {
        lot.woken(bits);
    }
}

// A waker per parked connection without an allocation: its data is the
// slot's number, never dereferenced, and its functions keep no state.
#[allow(unsafe_code)]
fn slot_waker(bits: u64) -> Waker {
    // SAFETY: see above; every function of the vtable is sound for any data.
    unsafe { Waker::from_raw(RawWaker::new(bits as usize as *const (), &SLOT_WAKER)) }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<P: Parkable> Wakeable for Lot<P> {
    fn woken(&self, bits: u64) {
        lock(&self.woken).push(bits);
        self.notify.notify_one();
    }
}

impl<P: Parkable> Lot<P> {
    /// A lot whose clock ticks every `delay`, served by a task on the
    /// current runtime.
    pub(crate) fn start(delay: Duration) -> io::Result<Arc<Self>> {
        let epoll = register(epoll::create(epoll::CreateFlags::CLOEXEC)?)?;
        let lot = Arc::new_cyclic(|weak: &Weak<Self>| {
            let weak: Weak<dyn Wakeable> = weak.clone();
            Self {
                epoll,
                key: lots().insert(weak),
                delay,
                slots: Mutex::new(Slots {
                    parked: Slab::new(),
                    next_generation: 0,
                }),
                woken: Mutex::default(),
                notify: Notify::new(),
                resting: Mutex::default(),
                epoch: AtomicU32::new(1),
            }
        });
        if u16::try_from(lot.key).is_err() {
            return Err(io::Error::other("too many parking lots"));
        }
        tokio::spawn(run(LotTask(lot.clone())));
        Ok(lot)
    }

    /// The lot's clock: ticks since it started.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Wakes `waker` at the next tick; returns the epoch it was enrolled
    /// in (its enrolment lasts until the epoch moves on) and its key there.
    pub fn enroll(&self, waker: &Waker) -> (u32, usize) {
        let mut resting = lock(&self.resting);
        let key = resting.insert(waker.clone());
        (self.epoch.load(Ordering::Relaxed), key)
    }

    /// Withdraws an enrolment made in an epoch `in_epoch` names (compared
    /// by `matches`) unless that epoch is over (its list woken and gone):
    /// a task that ends is not kept for the tick.
    pub fn withdraw(&self, key: usize, in_epoch: impl FnOnce(u32) -> bool) {
        let mut resting = lock(&self.resting);
        if in_epoch(self.epoch.load(Ordering::Relaxed)) {
            resting.try_remove(key);
        }
    }

    /// Parks what `arm` returns. `arm` gets the slot's waker, to store
    /// wherever the record's wakers are, and returns `Err` when the record
    /// must stay at work after all (nothing is parked then). Runs with the
    /// lot locked, so a wake-up that comes before the record is in its
    /// slot still finds it.
    pub fn park<S>(self: &Arc<Self>, arm: impl FnOnce(Waker) -> Result<P, S>) -> Result<(), S> {
        let mut slots = lock(&self.slots);
        let key = slots.parked.vacant_key();
        let generation = slots.next_generation;
        // A waker handed out, even to an `arm` that refuses, is never
        // this slot's again.
        slots.next_generation = generation.wrapping_add(1);
        let Ok(key32) = u32::try_from(key) else {
            unreachable!("more parked records than file descriptors");
        };
        // Checked at start.
        let bits = encode(self.key as u16, generation, key32);
        let value = arm(slot_waker(bits))?;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        if epoll::add(
            self.epoll.get_ref(),
            &value,
            epoll::EventData::new_u64(bits),
            flags,
        )
        .is_err()
        {
            drop(slots);
            // Not watched: back to work at once rather than lost.
            value.resume(self);
            return Ok(());
        }
        slots.parked.insert(Slot { value, generation });
        Ok(())
    }

    /// Resumes the record in the slot `bits` names, if it is still there.
    fn resume(self: &Arc<Self>, bits: u64) {
        let (_, generation, key) = decode(bits);
        let value = {
            let mut slots = lock(&self.slots);
            let key = key as usize;
            match slots.parked.get(key) {
                Some(slot) if slot.generation == generation => slots.parked.remove(key).value,
                _ => return,
            }
        };
        let _ = epoll::delete(self.epoll.get_ref(), &value);
        value.resume(self);
    }

    /// Records parked now.
    #[cfg(test)]
    fn parked(&self) -> usize {
        lock(&self.slots).parked.len()
    }

    /// The clock moves on; every enrolled task is woken.
    fn tick(&self) {
        let resting = {
            let mut resting = lock(&self.resting);
            self.epoch.fetch_add(1, Ordering::Release);
            std::mem::take(&mut *resting)
        };
        for (_, waker) in resting {
            waker.wake();
        }
    }

    /// Resumes the records whose sockets turned ready; whether the epoll
    /// may have more to report.
    fn resume_ready(self: &Arc<Self>) -> io::Result<bool> {
        let mut buffer = [MaybeUninit::<epoll::Event>::uninit(); EVENTS];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let (events, _) = epoll::wait(self.epoll.get_ref(), &mut buffer, Some(&now))?;
        let full = events.len() == EVENTS;
        for event in events.iter() {
            self.resume(event.data.u64());
        }
        Ok(full)
    }
}

/// The epoll in the current runtime's reactor.
// Registering a descriptor with tokio is unsafe in general: it must stay
// open as long as the registration. Here the registration owns it.
#[allow(unsafe_code)]
fn register(epoll: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: see above.
    unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }.map_err(io::Error::from)
}

impl<P> Drop for Lot<P> {
    fn drop(&mut self) {
        lots().try_remove(self.key);
    }
}

/// The lot's task. Parked records go with it when its runtime shuts down.
struct LotTask<P: Parkable>(Arc<Lot<P>>);

impl<P: Parkable> Drop for LotTask<P> {
    fn drop(&mut self) {
        let parked = std::mem::take(&mut lock(&self.0.slots).parked);
        drop(parked);
    }
}

async fn run<P: Parkable>(task: LotTask<P>) {
    let lot = &task.0;
    let mut tick = interval_at(tokio::time::Instant::now() + lot.delay, lot.delay);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ready = lot.epoll.readable() => {
                let Ok(mut guard) = ready else { return };
                match lot.resume_ready() {
                    Ok(true) => {}
                    Ok(false) => guard.clear_ready(),
                    Err(_) => return,
                }
            }
            () = lot.notify.notified() => {
                let woken = std::mem::take(&mut *lock(&lot.woken));
                for bits in woken {
                    lot.resume(bits);
                }
            }
            _ = tick.tick() => {
                lot.tick();
                // No one can park here any more.
                if Arc::strong_count(lot) == 1 && lock(&lot.slots).parked.is_empty() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::BorrowedFd;
    use std::os::unix::net::UnixStream;

    use tokio::sync::mpsc;

    use super::*;

    /// A parked test record: one end of a socket pair, which reports its
    /// resumption.
    struct Record {
        socket: UnixStream,
        name: &'static str,
        resumed: mpsc::UnboundedSender<&'static str>,
    }

    impl AsFd for Record {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.socket.as_fd()
        }
    }

    impl Parkable for Record {
        fn resume(self, _lot: &Arc<Lot<Self>>) {
            let _ = self.resumed.send(self.name);
        }
    }

    fn record(
        name: &'static str,
        resumed: &mpsc::UnboundedSender<&'static str>,
    ) -> (Record, UnixStream) {
        let (socket, peer) = UnixStream::pair().unwrap();
        let record = Record {
            socket,
            name,
            resumed: resumed.clone(),
        };
        (record, peer)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("resumed in time")
            .unwrap()
    }

    #[test]
    fn a_slot_is_named_by_lot_generation_and_key() {
        let bits = encode(7, 65_535, 1_000_000);
        assert_eq!(decode(bits), (7, 65_535, 1_000_000));
        assert_eq!(decode(encode(0, 1, 0)), (0, 1, 0));
    }

    #[tokio::test]
    async fn a_record_resumes_when_its_socket_turns_readable() {
        let lot = Lot::start(Duration::from_secs(60)).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (a, mut a_peer) = record("a", &tx);
        let (b, _b_peer) = record("b", &tx);
        assert!(lot.park(|_| Ok::<_, ()>(a)).is_ok());
        assert!(lot.park(|_| Ok::<_, ()>(b)).is_ok());
        assert_eq!(lot.parked(), 2);
        std::io::Write::write_all(&mut a_peer, b"x").unwrap();
        assert_eq!(next(&mut rx).await, "a");
        assert_eq!(lot.parked(), 1);
        // A hang-up wakes too.
        drop(_b_peer);
        assert_eq!(next(&mut rx).await, "b");
        assert_eq!(lot.parked(), 0);
    }

    #[tokio::test]
    async fn a_slot_waker_resumes_its_record_once_and_stale_ones_are_ignored() {
        let lot = Lot::start(Duration::from_secs(60)).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (a, _a_peer) = record("a", &tx);
        let mut stored = None;
        lot.park(|waker| {
            stored = Some(waker);
            Ok::<_, ()>(a)
        })
        .unwrap();
        let waker = stored.unwrap();
        // Clones are the same number: no allocation, and they wake the
        // same slot from any thread.
        let clone = waker.clone();
        assert!(clone.will_wake(&waker));
        std::thread::spawn(move || clone.wake()).join().unwrap();
        assert_eq!(next(&mut rx).await, "a");
        // The slot's next tenant is not woken by the old waker.
        let (b, _b_peer) = record("b", &tx);
        let mut b_waker = None;
        lot.park(|waker| {
            b_waker = Some(waker);
            Ok::<_, ()>(b)
        })
        .unwrap();
        waker.wake_by_ref();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "a stale waker resumed a record");
        assert_eq!(lot.parked(), 1);
        b_waker.unwrap().wake();
        assert_eq!(next(&mut rx).await, "b");
    }

    #[tokio::test]
    async fn a_refused_park_leaves_nothing_behind() {
        let lot = Lot::<Record>::start(Duration::from_secs(60)).unwrap();
        assert_eq!(lot.park(|_| Err("busy")), Err("busy"));
        assert_eq!(lot.parked(), 0);
    }

    #[tokio::test]
    async fn enrolled_tasks_are_woken_at_the_next_tick() {
        let lot = Lot::<Record>::start(Duration::from_millis(100)).unwrap();
        let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = woken.clone();
        let waker = Waker::from(Arc::new(Flag(flag)));
        let start = lot.epoch();
        assert_eq!(lot.enroll(&waker).0, start);
        // A withdrawn enrolment is not woken.
        let withdrawn = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (epoch, key) = lot.enroll(&Waker::from(Arc::new(Flag(withdrawn.clone()))));
        lot.withdraw(key, |now| now == epoch);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!woken.load(Ordering::SeqCst), "woken before the tick");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(woken.load(Ordering::SeqCst));
        assert!(!withdrawn.load(Ordering::SeqCst));
        assert_eq!(lot.epoch(), start + 1);
    }

    struct Flag(Arc<std::sync::atomic::AtomicBool>);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}
