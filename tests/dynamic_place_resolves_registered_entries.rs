//! `#[place]` registers entries under (module path, name); `dynamic_place` finds them at run time
//! and refuses unknown keys and wrong message types with errors that say what is registered.

use places::prelude::*;

/// Echoes strings until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<String>) {
    while let Ok(s) = ch.get() {
        if ch.put(s).is_err() {
            return;
        }
    }
}

/// A second module with an entry of the same name.
mod numbers {
    use places::prelude::*;

    /// Same name as the outer `echo`, another module, other types: another entry.
    #[place]
    pub fn echo(ch: PlaceChannel<u64, u32>) {
        while let Ok(n) = ch.get() {
            if ch.put(u64::from(n) * 2).is_err() {
                return;
            }
        }
    }
}

#[test]
fn starts_an_entry_by_module_path_and_name() {
    let p: Place<String> = dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get("ping".to_string()).unwrap(), "ping");
    drop(p);
}

#[test]
fn the_same_name_in_another_module_is_another_entry() {
    let module = format!("{}::numbers", module_path!());
    let p: Place<u32, u64> = dynamic_place(&module, "echo").unwrap();
    assert_eq!(p.put_get(21).unwrap(), 42);
}

#[test]
fn an_unknown_key_is_an_error_that_names_the_nearest_entries() {
    let err = dynamic_place::<String, String>(module_path!(), "ecoh").unwrap_err();
    let SpawnError::UnknownEntry { key, nearest } = &err else {
        panic!("expected UnknownEntry, got {err:?}");
    };
    assert_eq!(key, &format!("{}::ecoh", module_path!()));
    assert_eq!(
        nearest.first(),
        Some(&format!("{}::echo", module_path!())),
        "{nearest:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("no place entry") && text.contains("::echo`"),
        "{text}"
    );
}

#[test]
fn an_unknown_module_is_an_error_too() {
    let err = dynamic_place::<String, String>("no_such_crate::anywhere", "echo").unwrap_err();
    assert!(matches!(err, SpawnError::UnknownEntry { .. }), "{err:?}");
}

#[test]
fn wrong_message_types_are_an_error_that_names_both() {
    let err = dynamic_place::<u32, u32>(module_path!(), "echo").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SpawnError::TypeMismatch { .. }), "{err:?}");
    assert!(text.contains("receives `alloc::string::String`"), "{text}");
    assert!(text.contains("receives `u32`"), "{text}");
}

#[test]
fn swapped_message_types_are_a_mismatch() {
    // The entry receives u32 and sends u64; asking for the reverse must not start it.
    let module = format!("{}::numbers", module_path!());
    let err = dynamic_place::<u64, u32>(&module, "echo").unwrap_err();
    assert!(matches!(err, SpawnError::TypeMismatch { .. }), "{err:?}");
}

#[test]
fn place_spawn_starts_an_entry_by_value() {
    let p: Place<u32, u64> = Place::spawn(numbers::echo).unwrap();
    assert_eq!(p.put_get(5).unwrap(), 10);
}

#[test]
fn entries_lists_keys_locations_and_message_types() {
    let all = places::entries();
    let mine = all
        .iter()
        .find(|e| e.key().module() == module_path!() && e.key().name() == "echo")
        .expect("echo is registered");
    assert_eq!(mine.receives().name(), "alloc::string::String");
    assert_eq!(mine.sends().name(), "alloc::string::String");
    assert!(
        mine.location()
            .contains("dynamic_place_resolves_registered_entries.rs"),
        "{}",
        mine.location()
    );
    assert!(places::check_registry().is_ok());
    assert!(places::init().is_ok());
}

#[test]
fn many_places_run_at_once() {
    let ps: Vec<Place<String>> = (0..64)
        .map(|_| dynamic_place(module_path!(), "echo").unwrap())
        .collect();
    for (i, p) in ps.iter().enumerate() {
        p.put(format!("m{i}")).unwrap();
    }
    for (i, p) in ps.iter().enumerate() {
        assert_eq!(
            p.get_timeout(std::time::Duration::from_secs(30)).unwrap(),
            format!("m{i}")
        );
    }
}
