//! Attributes on a server declaration apply to the whole server: a `#[cfg]` that is false takes
//! every generated item out (so a second server of the same name, under the opposite `cfg`,
//! does not clash), and doc comments document the entry.

use places::{define_remote_server, Place};

define_remote_server! {
    /// A bank that only exists when `not(any())` holds (always).
    #[cfg(not(any()))]
    #[allow(unused_variables)]
    bank {
        state balance: u64 = 10;
        rpc fn balance(unused: u8) -> u64 {
            balance
        }
    }
}

define_remote_server! {
    /// Never compiled: `any()` is false. Were only one item removed, the names would clash.
    #[cfg(any())]
    bank {
        rpc fn balance() -> String {
            String::new()
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    assert_eq!(bank_balance(&server, 0).unwrap(), 10);
    assert_eq!(BankClient::new(&server).balance(1).unwrap(), 10);
}
