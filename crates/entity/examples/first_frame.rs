//! Segments frames with ISNet, saves each frame's entity memory (with `overlay.png`) and
//! composes the first entity of every frame onto a background in FFGo's layout:
//! `cargo run --release -p reelsmith-entity --example first_frame -- WEIGHTS OUT BACKGROUND FRAME...`
//! (writes `OUT/<frame name>/…`, `OUT/first_frame.png`, `OUT/layout.json`).

use std::path::Path;

use candle_core::Device;
use reelsmith_entity::compose::{compose, ComposeOptions, Cutout, Layout};
use reelsmith_entity::entity::FrameEntities;
use reelsmith_entity::segment::{IsnetSegmenter, Segmenter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: first_frame WEIGHTS OUT BACKGROUND FRAME...");
        std::process::exit(2);
    }
    let seg = IsnetSegmenter::load(Path::new(&args[1]), &Device::Cpu)?;
    let out = Path::new(&args[2]);
    std::fs::create_dir_all(out)?;
    let mut cutouts = Vec::new();
    for f in &args[4..] {
        let frame = image::open(f)?.to_rgb8();
        let t = std::time::Instant::now();
        let inst = seg.segment(&frame)?;
        let mut ents = FrameEntities::from_instances(&frame, inst, seg.name())?;
        ents.source = Some(f.clone());
        let name = Path::new(f)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        ents.save(&out.join(&name), Some(&frame))?;
        println!(
            "{name}: {} entities in {:.1} s{}",
            ents.entities.len(),
            t.elapsed().as_secs_f64(),
            ents.entities
                .iter()
                .map(|e| format!(
                    "; #{} box {}x{}+{}+{} area {:.3} score {:.3}",
                    e.id, e.bbox.width, e.bbox.height, e.bbox.x, e.bbox.y, e.area_fraction, e.score
                ))
                .collect::<String>()
        );
        if let Some(e) = ents.entities.first() {
            cutouts.push(Cutout {
                name: format!("{name}/entity_00.png"),
                image: e.cutout.clone(),
                has_alpha: true,
            });
        }
    }
    let bg = image::open(&args[3])?.to_rgb8();
    let (img, layout) = compose(&bg, &cutouts, &Layout::Ffgo, &ComposeOptions::default())?;
    img.save(out.join("first_frame.png"))?;
    std::fs::write(
        out.join("layout.json"),
        serde_json::to_string_pretty(&layout)?,
    )?;
    println!("first_frame.png: {} cut-outs on {}", cutouts.len(), args[3]);
    Ok(())
}
