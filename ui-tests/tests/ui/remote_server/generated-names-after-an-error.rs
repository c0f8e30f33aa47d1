use places::{define_remote_server, Place};

// The definition has an error; the uses of `BankClient`, `bank_deposit` and `make_bank` below
// must not add errors of their own.
define_remote_server! {
    bank {
        state balance: u64;
        rpc fn deposit(amount: u64) -> u64 {
            balance += amount;
            balance
        }
        cast fn reset() {
            balance = 0;
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    let after: u64 = bank_deposit(&server, 10).unwrap();
    bank_reset(&server).unwrap();
    let client = BankClient::new(&server).with_deadline(std::time::Duration::from_secs(1));
    let again: u64 = client.deposit(5).unwrap();
    client.reset().unwrap();
    println!("{after} {again}");
}
