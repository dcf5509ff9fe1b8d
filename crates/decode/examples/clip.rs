//! Cut a clip: `cargo run --example clip -- IN START END OUT [copy]`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: clip IN START END OUT [copy]");
        std::process::exit(2);
    }
    let v = reelsmith_decode::open(&a[1])?;
    let mut o = reelsmith_decode::ClipOptions::default();
    if a.get(5).map(|s| s == "copy").unwrap_or(false) {
        o.mode = reelsmith_decode::ClipMode::StreamCopy;
    }
    let r = reelsmith_decode::export_clip(&v, a[2].parse()?, a[3].parse()?, a[4].as_ref(), &o)?;
    println!("{r:?}");
    Ok(())
}
