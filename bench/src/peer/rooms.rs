//! Rooms for the fan-out benchmark: members join `/room/<name>` and every
//! message one sends goes to every other member's outbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The room a request path names, if it is `/room/<name>`.
pub fn room_name(path: &str) -> Option<&str> {
    path.strip_prefix("/room/").filter(|name| !name.is_empty())
}

/// Members of every room, each known by an id and an outbox of type `T`.
pub struct Rooms<T> {
    members: Mutex<HashMap<String, Vec<(u64, T)>>>,
    next_id: AtomicU64,
}

impl<T> Default for Rooms<T> {
    fn default() -> Self {
        Self {
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<T> Rooms<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<(u64, T)>>> {
        // A member that panicked mid-broadcast leaves the map intact.
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn join(self: &Arc<Self>, room: &str, outbox: T) -> Membership<T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(room.to_owned())
            .or_default()
            .push((id, outbox));
        Membership {
            rooms: Arc::clone(self),
            room: room.to_owned(),
            id,
        }
    }
}

/// One member's place in a room; leaving happens on drop.
pub struct Membership<T> {
    rooms: Arc<Rooms<T>>,
    room: String,
    id: u64,
}

impl<T> Membership<T> {
    /// Calls `deliver` with the outbox of every other member.
    pub fn for_each_other(&self, mut deliver: impl FnMut(&T)) {
        let members = self.rooms.lock();
        let others = members.get(&self.room).into_iter().flatten();
        for (_, outbox) in others.filter(|(id, _)| *id != self.id) {
            deliver(outbox);
        }
    }
}

impl<T> Drop for Membership<T> {
    fn drop(&mut self) {
        let mut members = self.rooms.lock();
        if let Some(room) = members.get_mut(&self.room) {
            room.retain(|(id, _)| *id != self.id);
            if room.is_empty() {
                members.remove(&self.room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn others_of(member: &Membership<&'static str>) -> Vec<&'static str> {
        let mut seen = Vec::new();
        member.for_each_other(|outbox| seen.push(*outbox));
        seen.sort();
        seen
    }

    #[test]
    fn delivers_to_every_other_member_of_the_same_room() {
        let rooms = Arc::new(Rooms::default());
        let a = rooms.join("x", "a");
        let b = rooms.join("x", "b");
        let c = rooms.join("x", "c");
        let other_room = rooms.join("y", "d");
        assert_eq!(others_of(&a), ["b", "c"]);
        assert_eq!(others_of(&b), ["a", "c"]);
        assert!(others_of(&other_room).is_empty());
        drop(c);
        assert_eq!(others_of(&a), ["b"]);
    }

    #[test]
    fn parses_room_paths() {
        assert_eq!(room_name("/room/lobby"), Some("lobby"));
        assert_eq!(room_name("/room/"), None);
        assert_eq!(room_name("/echo"), None);
    }
}
