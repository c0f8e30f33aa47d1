use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc fn deposit<T: Into<u64>>(amount: T) -> u64 {
            balance += amount.into();
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
