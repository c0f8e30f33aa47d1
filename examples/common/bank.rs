//! The bank server of the distributed places reference: a private RPC server with accounts.

use std::collections::HashMap;
use std::fmt;

/// What the bank answers, shown the way Racket prints the reference's lists.
#[places::message]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankReply {
    /// `(created who)`
    Created(String),
    /// `(already-exists)`
    AlreadyExists,
    /// `(ok balance)`
    Ok(u64),
    /// `(insufficient-funds balance)`
    InsufficientFunds(u64),
    /// `(invalid-account who)`
    InvalidAccount(String),
}

impl fmt::Display for BankReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankReply::Created(who) => write!(f, "(created {who})"),
            BankReply::AlreadyExists => write!(f, "(already-exists)"),
            BankReply::Ok(b) => write!(f, "(ok {b})"),
            BankReply::InsufficientFunds(b) => write!(f, "(insufficient-funds {b})"),
            BankReply::InvalidAccount(who) => write!(f, "(invalid-account {who})"),
        }
    }
}

places::define_remote_server! {
    pub bank {
        state accounts: HashMap<String, u64> = HashMap::new();
        rpc fn new_account(who: String) -> BankReply {
            if accounts.contains_key(&who) {
                return BankReply::AlreadyExists;
            }
            accounts.insert(who.clone(), 0);
            BankReply::Created(who)
        }
        rpc fn remove(who: String, amount: u64) -> BankReply {
            match accounts.get_mut(&who) {
                Some(balance) if amount <= *balance => {
                    *balance -= amount;
                    BankReply::Ok(*balance)
                }
                Some(balance) => BankReply::InsufficientFunds(*balance),
                None => BankReply::InvalidAccount(who),
            }
        }
        rpc fn add(who: String, amount: u64) -> BankReply {
            match accounts.get_mut(&who) {
                Some(balance) => {
                    *balance += amount;
                    BankReply::Ok(*balance)
                }
                None => BankReply::InvalidAccount(who),
            }
        }
    }
}
