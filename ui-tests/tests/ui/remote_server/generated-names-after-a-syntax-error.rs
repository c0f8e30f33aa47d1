use places::{define_remote_server, Place};

// The definition cannot be read; the uses of `BankClient`, `bank_deposit` and `make_bank` below
// should not add errors of their own.
define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc deposit(amount: u64) -> u64 {
            balance += amount;
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    let after: u64 = bank_deposit(&server, 10).unwrap();
    let again: u64 = BankClient::new(&server).deposit(5).unwrap();
    println!("{after} {again}");
}
