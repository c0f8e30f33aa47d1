use places::{define_remote_server, Place};

struct Deposit {
    amount: u64,
}

define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc fn deposit(d: Deposit) -> u64 {
            balance += d.amount;
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    println!("{}", bank_deposit(&server, Deposit { amount: 5 }).unwrap());
}
