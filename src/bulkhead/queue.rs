//! The wait queue: priority classes served in strict order, a guard that bounds how many
//! times in a row a waiting class is passed over, and shedding by queue age.
//!
//! Everything here runs under the bulkhead's queue lock, on the slow path only (a caller that
//! found no free permit, or a permit returned while callers wait).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The most priority classes a bulkhead may have.
pub const MAX_PRIORITIES: u8 = 8;

/// Shedding by queue age, after CoDel: the queue is *standing* when every caller admitted
/// over the last `interval` had waited longer than `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shed {
    pub(crate) target: Duration,
    pub(crate) interval: Duration,
}

/// What became of the callers a pop went through.
pub(crate) enum Popped<T> {
    /// The next caller to admit.
    Next(T),
    /// A caller shed for its age: reject it and pop again.
    Shed(T),
    /// Nobody waits.
    Empty,
}

pub(crate) struct Queue<T> {
    classes: Vec<VecDeque<(Instant, T)>>,
    /// Per class: grants in a row that went to another class while this one had waiters.
    skipped: Vec<u32>,
    len: usize,
    max_bypass: u32,
    shed: Option<Shed>,
    /// Since when every admitted caller had waited longer than the shed target.
    above_since: Option<Instant>,
    /// Whether the queue is standing (shedding by age).
    standing: bool,
    /// A change of `standing` not yet reported.
    flipped: bool,
}

impl<T> Queue<T> {
    pub(crate) fn new(classes: u8, max_bypass: u32, shed: Option<Shed>) -> Self {
        let n = usize::from(classes.clamp(1, MAX_PRIORITIES));
        Queue {
            classes: (0..n).map(|_| VecDeque::new()).collect(),
            skipped: vec![0; n],
            len: 0,
            max_bypass,
            shed,
            above_since: None,
            standing: false,
            flipped: false,
        }
    }

    pub(crate) fn push(&mut self, class: usize, at: Instant, item: T) {
        if let Some(q) = self.classes.get_mut(class) {
            q.push_back((at, item));
            self.len += 1;
        }
    }

    /// Make room for a caller of `class` in a full queue: remove the youngest waiter of the
    /// lowest class below it. `None` when nobody waits at a lower priority.
    pub(crate) fn displace_for(&mut self, class: usize) -> Option<(Instant, T)> {
        let lowest = (class + 1..self.classes.len())
            .rev()
            .find(|&c| self.classes.get(c).is_some_and(|q| !q.is_empty()))?;
        let out = self.classes.get_mut(lowest)?.pop_back()?;
        self.removed(lowest);
        Some(out)
    }

    /// Remove the waiter `is` picks out, wherever it waits.
    pub(crate) fn remove(&mut self, class: usize, is: impl Fn(&T) -> bool) -> bool {
        let Some(q) = self.classes.get_mut(class) else {
            return false;
        };
        match q.iter().position(|(_, t)| is(t)) {
            Some(i) => {
                q.remove(i);
                self.removed(class);
                true
            }
            None => false,
        }
    }

    fn removed(&mut self, class: usize) {
        self.len -= 1;
        if self.len == 0 {
            // An empty queue is not standing, whatever it was.
            self.above_since = None;
            self.set_standing(false);
        }
        if self.classes.get(class).is_some_and(VecDeque::is_empty) {
            // A class that stops waiting starts its count afresh when it waits again.
            if let Some(s) = self.skipped.get_mut(class) {
                *s = 0;
            }
        }
    }

    /// The class to serve next: the highest class that waits, unless a class has been passed
    /// over `max_bypass` times in a row, in which case the most passed-over class goes first
    /// (the higher class on a tie).
    ///
    /// While a class waits, another class can go ahead of it at most `max_bypass` times
    /// before it is starving, and then at most once per other class (a class just served
    /// starts again from zero and cannot catch up): it is never passed over more than
    /// `max_bypass + classes - 1` times in a row.
    fn pick(&self) -> Option<usize> {
        let waiting = |c: &usize| self.classes.get(*c).is_some_and(|q| !q.is_empty());
        let n = self.classes.len();
        let mut starving: Option<(u32, usize)> = None;
        for c in (0..n).filter(waiting) {
            let s = self.skipped.get(c).copied().unwrap_or(0);
            if s >= self.max_bypass && starving.is_none_or(|(best, _)| s > best) {
                starving = Some((s, c));
            }
        }
        starving.map(|(_, c)| c).or_else(|| (0..n).find(waiting))
    }

    /// The next caller to admit at `now`, or one to shed first.
    pub(crate) fn pop(&mut self, now: Instant) -> Popped<T> {
        let Some(class) = self.pick() else {
            return Popped::Empty;
        };
        let Some((at, item)) = self.classes.get_mut(class).and_then(VecDeque::pop_front) else {
            return Popped::Empty;
        };
        let waited = now.saturating_duration_since(at);
        if let Some(shed) = self.shed {
            if waited < shed.target {
                self.above_since = None;
                self.set_standing(false);
            } else {
                let since = *self.above_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= shed.interval {
                    self.set_standing(true);
                }
                // A standing queue admits only callers still young enough to be worth
                // serving; older ones have likely given up upstream and are shed.
                if self.standing && waited >= shed.interval {
                    self.removed(class);
                    return Popped::Shed(item);
                }
            }
        }
        self.removed(class);
        for (c, s) in self.skipped.iter_mut().enumerate() {
            if c == class {
                *s = 0;
            } else if self.classes.get(c).is_some_and(|q| !q.is_empty()) {
                *s = s.saturating_add(1);
            }
        }
        Popped::Next(item)
    }

    fn set_standing(&mut self, standing: bool) {
        if self.standing != standing {
            self.standing = standing;
            self.flipped = !self.flipped;
        }
    }

    /// Whether the queue is standing (shedding by age).
    pub(crate) fn standing(&self) -> bool {
        self.standing
    }

    /// `Some(standing)` if the queue started or stopped standing since the last call.
    pub(crate) fn take_flip(&mut self) -> Option<bool> {
        std::mem::take(&mut self.flipped).then_some(self.standing)
    }

    /// Waiters per class, highest first.
    pub(crate) fn per_class(&self) -> impl Iterator<Item = usize> + '_ {
        self.classes.iter().map(VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(classes: u8, max_bypass: u32) -> Queue<u32> {
        Queue::new(classes, max_bypass, None)
    }

    fn next(q: &mut Queue<u32>, now: Instant) -> Option<u32> {
        match q.pop(now) {
            Popped::Next(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn serves_the_highest_class_first_and_fifo_within_a_class() {
        let now = Instant::now();
        let mut q = queue(3, 100);
        q.push(2, now, 20);
        q.push(1, now, 10);
        q.push(0, now, 0);
        q.push(0, now, 1);
        let order: Vec<_> = std::iter::from_fn(|| next(&mut q, now)).collect();
        assert_eq!(order, [0, 1, 10, 20]);
        assert_eq!(q.per_class().sum::<usize>(), 0);
    }

    #[test]
    fn a_starving_class_goes_next_after_max_bypass() {
        let now = Instant::now();
        let mut q = queue(2, 2);
        q.push(1, now, 100);
        for i in 0..10 {
            q.push(0, now, i);
        }
        let order: Vec<_> = std::iter::from_fn(|| next(&mut q, now)).take(4).collect();
        assert_eq!(order, [0, 1, 100, 2]);
    }

    #[test]
    fn displacement_takes_the_youngest_of_the_lowest_class() {
        let now = Instant::now();
        let mut q = queue(3, 8);
        q.push(1, now, 10);
        q.push(2, now, 20);
        q.push(2, now, 21);
        assert_eq!(q.displace_for(0).map(|(_, t)| t), Some(21));
        assert_eq!(q.displace_for(1).map(|(_, t)| t), Some(20));
        assert_eq!(q.displace_for(1), None);
        assert_eq!(q.displace_for(0).map(|(_, t)| t), Some(10));
        assert_eq!(q.per_class().sum::<usize>(), 0);
    }

    #[test]
    fn a_standing_queue_sheds_callers_older_than_the_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = Queue::new(
            1,
            8,
            Some(Shed {
                target: ms(5),
                interval: ms(100),
            }),
        );
        for i in 0..4 {
            q.push(0, t0, i);
        }
        // Waited 50 ms: above target, but not standing for an interval yet.
        assert!(matches!(q.pop(t0 + ms(50)), Popped::Next(0)));
        // 150 ms later still above target: standing, and the next waiter (waited 200 ms) is shed.
        assert!(matches!(q.pop(t0 + ms(200)), Popped::Shed(1)));
        assert!(q.standing());
        q.push(0, t0 + ms(199), 9);
        assert!(matches!(q.pop(t0 + ms(200)), Popped::Shed(2)));
        assert!(matches!(q.pop(t0 + ms(200)), Popped::Shed(3)));
        // A young caller is admitted, and ends the standing episode.
        assert!(matches!(q.pop(t0 + ms(200)), Popped::Next(9)));
        assert!(!q.standing());
    }
}
