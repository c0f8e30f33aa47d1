//! Selective receive: take the first message that matches, keeping the others in arrival order
//! for later receives. One implementation behind [`Comm`](crate::Comm)'s tagged receives and
//! [`TypedChannel::get`](crate::TypedChannel::get).

use std::cell::RefCell;
use std::collections::VecDeque;

/// Messages received while a receive waited for another kind, oldest first.
pub(crate) struct Stash<T> {
    kept: RefCell<VecDeque<T>>,
}

impl<T> Stash<T> {
    pub(crate) fn new() -> Self {
        Self {
            kept: RefCell::new(VecDeque::new()),
        }
    }

    /// The oldest kept message that `wanted` accepts, if any.
    pub(crate) fn take(&self, wanted: impl Fn(&T) -> bool) -> Option<T> {
        let mut kept = self.kept.borrow_mut();
        let at = kept.iter().position(wanted)?;
        kept.remove(at)
    }

    /// The oldest kept message that `wanted` accepts, or else the first such one `receive`
    /// returns; the others `receive` returns meanwhile are kept. Errors of `receive` pass
    /// through (what was kept stays kept).
    pub(crate) fn take_or_receive<E>(
        &self,
        wanted: impl Fn(&T) -> bool,
        mut receive: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(m) = self.take(&wanted) {
            return Ok(m);
        }
        loop {
            let m = receive()?;
            if wanted(&m) {
                return Ok(m);
            }
            self.keep(m);
        }
    }

    /// Keeps `m` after the messages kept so far.
    pub(crate) fn keep(&self, m: T) {
        self.kept.borrow_mut().push_back(m);
    }

    /// The oldest kept message.
    pub(crate) fn pop(&self) -> Option<T> {
        self.kept.borrow_mut().pop_front()
    }

    /// Every kept message, oldest first.
    pub(crate) fn into_vec(self) -> Vec<T> {
        self.kept.into_inner().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_first_match_and_keeps_the_rest_in_order() {
        let stash = Stash::new();
        let mut incoming = vec![1, 2, 10, 3, 20].into_iter();
        let mut next = || incoming.next().ok_or("closed");
        assert_eq!(stash.take_or_receive(|&v| v >= 10, &mut next), Ok(10));
        assert_eq!(stash.take_or_receive(|&v| v < 10, &mut next), Ok(1));
        assert_eq!(stash.take_or_receive(|&v| v >= 10, &mut next), Ok(20));
        assert_eq!(
            stash.take_or_receive(|&v| v >= 10, &mut next),
            Err("closed")
        );
        assert_eq!(stash.into_vec(), [2, 3]);
    }
}
