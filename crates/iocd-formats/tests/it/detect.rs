//! Format detection by extension, then by content.

use std::path::Path;

use iocd_formats::{detect_format, Format};

const BUNDLE: &[u8] =
    br#"{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": []}"#;

#[test]
fn by_extension() {
    assert_eq!(
        detect_format(Path::new("iocs.CSV"), b"anything"),
        Some(Format::Csv)
    );
    assert_eq!(
        detect_format(Path::new("iocs.json"), b"[]"),
        Some(Format::Json)
    );
    assert_eq!(
        detect_format(Path::new("iocs.stix"), b"{}"),
        Some(Format::Stix)
    );
    // A .json file that holds a STIX bundle is STIX.
    assert_eq!(
        detect_format(Path::new("feed.json"), BUNDLE),
        Some(Format::Stix)
    );
    // A broken .json file is still JSON, so parsing reports where it breaks.
    assert_eq!(
        detect_format(Path::new("feed.json"), b"{\"type\": "),
        Some(Format::Json)
    );
}

#[test]
fn by_content() {
    assert_eq!(
        detect_format(Path::new("-"), b"  [ {\"indicatorValue\": \"a\"} ]"),
        Some(Format::Json)
    );
    assert_eq!(detect_format(Path::new("feed"), BUNDLE), Some(Format::Stix));
    assert_eq!(
        detect_format(
            Path::new("export.txt"),
            b"\xEF\xBB\xBFIndicatorType,IndicatorValue,Action\r\nUrl,a,Block\r\n"
        ),
        Some(Format::Csv)
    );
    assert_eq!(
        detect_format(Path::new("list"), b"[\"bundle\"]"),
        Some(Format::Json)
    );
    assert_eq!(detect_format(Path::new("notes.txt"), b"hello, world"), None);
    assert_eq!(detect_format(Path::new("empty"), b""), None);
}
