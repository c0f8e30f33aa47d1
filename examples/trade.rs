//! The buyer and the seller of dissertation section 3.3: two places that are handed the two ends
//! of a fresh `place_channel()` and then negotiate directly, reporting only their final results
//! through their original channels.
//!
//! ```text
//! cargo run --example trade
//! ```
//!
//! The seller asks 100 and comes down 10 a round; the buyer bids 50 and goes up 10 a round; they
//! settle when the bid meets the ask. It prints the two reports:
//!
//! ```text
//! buyer: bought for 70 after 4 rounds
//! seller: sold for 70 after 4 rounds
//! ```

use places::prelude::*;

/// What buyer and seller say to each other on their direct channel.
#[places::message]
#[derive(Debug)]
pub enum Offer {
    /// The seller's asking price.
    Ask(u32),
    /// The buyer's bid.
    Bid(u32),
    /// The buyer takes the last ask.
    Deal(u32),
}

/// The seller: receives its end of the direct channel, reports one line.
#[place]
pub fn seller(ch: PlaceChannel<String, PlaceChannel<Offer>>) {
    let Ok(to_buyer) = ch.get() else { return };
    let mut ask = 100;
    let mut rounds = 0;
    let report = loop {
        rounds += 1;
        if to_buyer.put(Offer::Ask(ask)).is_err() {
            break "seller: the buyer left".to_string();
        }
        match to_buyer.get() {
            Ok(Offer::Deal(price)) => {
                break format!("seller: sold for {price} after {rounds} rounds")
            }
            Ok(Offer::Bid(_)) => ask -= 10,
            Ok(other) => break format!("seller: unexpected {other:?}"),
            Err(e) => break format!("seller: {e}"),
        }
    };
    let _ = ch.put(report);
}

/// The buyer: receives its end of the direct channel, reports one line.
#[place]
pub fn buyer(ch: PlaceChannel<String, PlaceChannel<Offer>>) {
    let Ok(to_seller) = ch.get() else { return };
    let mut bid = 50;
    let mut rounds = 0;
    let report = loop {
        rounds += 1;
        match to_seller.get() {
            Ok(Offer::Ask(ask)) if bid >= ask => {
                let _ = to_seller.put(Offer::Deal(ask));
                break format!("buyer: bought for {ask} after {rounds} rounds");
            }
            Ok(Offer::Ask(_)) => {
                let _ = to_seller.put(Offer::Bid(bid));
                bid += 10;
            }
            Ok(other) => break format!("buyer: unexpected {other:?}"),
            Err(e) => break format!("buyer: {e}"),
        }
    };
    let _ = ch.put(report);
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let b: Place<PlaceChannel<Offer>, String> = dynamic_place(module_path!(), "buyer")?;
    let s: Place<PlaceChannel<Offer>, String> = dynamic_place(module_path!(), "seller")?;
    let (b2s, s2b) = place_channel::<Offer, Offer>();
    b.put(b2s)?;
    s.put(s2b)?;
    // ... buyer and seller negotiate on their own ...
    println!("{}", b.get()?);
    println!("{}", s.get()?);
    Ok(())
}
