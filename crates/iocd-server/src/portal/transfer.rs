//! Importing a file (CSV, JSON or STIX, read by `iocd_formats` as `iocd import` reads it) and
//! exporting the list's current filter in the same formats.
//!
//! An import runs in the background in batches of 500 (the import API's size, each through the
//! same validation and store call as `POST /api/indicators/import`); its page shows a progress
//! bar that refreshes itself (a `Refresh` header, so without JavaScript too) and, at the end, the
//! report: how many landed and every refused row with its line number and reason.

use std::path::Path as FilePath;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use iocd_domain::{parse_submission, time, ChangeSource, Submission, ValidationError};
use iocd_formats::{detect_format, Format, ImportOptions, RowProblem};
use iocd_identity::Caller;
use iocd_odata::{parse_list_query, MAX_TOP};
use iocd_store::ListRequest;
use maud::html;
use serde_json::Value;

use super::forms::{read_only, store_failure};
use super::indicators::{no_role, ListParams};
use super::session::same_secret;
use super::{csrf_refusal, message_page, page_with_status, see_other, Section, Signed};
use crate::bulk::MAX_BATCH;
use crate::error::ApiError;
use crate::AppState;

/// Most rows one export writes.
pub(crate) const MAX_EXPORT_ROWS: usize = 100_000;

/// One refused row of an import.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub line: usize,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Default)]
struct ImportState {
    total: usize,
    done: usize,
    landed: usize,
    refused: Vec<Refusal>,
    skipped: Vec<RowProblem>,
    finished: bool,
    /// The import stopped (the database failed); rows after `done` were not tried.
    failure: Option<String>,
}

/// An import in progress or done.
#[derive(Debug)]
pub(crate) struct ImportJob {
    file_name: String,
    format: Format,
    state: Mutex<ImportState>,
}

impl ImportJob {
    fn state(&self) -> std::sync::MutexGuard<'_, ImportState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `GET /portal/import`.
pub(crate) async fn import_form(signed: Signed) -> Response {
    if !signed.can_manage() {
        return read_only(&signed);
    }
    import_page(&signed, StatusCode::OK, None)
}

fn import_page(signed: &Signed, status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Import indicators" }
        @if let Some(error) = error {
            div.notice.bad role="alert" #import-error { (error) }
        }
        p { "A CSV file in the Defender portal's layout (the columns " code { "IndicatorType, IndicatorValue, ExpirationTime, Action, Severity, Title, Description, …" } "), "
            "a JSON array of API request objects, or a STIX 2.1 bundle. Every row is checked as the API checks it; "
            "the report lists the refused rows with their line numbers." }
        form.stacked method="post" action="/portal/import" enctype="multipart/form-data" data-progress="upload-progress" {
            (signed.csrf_field())
            div.field {
                label for="file" { "File" }
                input #file type="file" name="file" accept=".csv,.json,.stix,.stix2,text/csv,application/json";
            }
            div.field {
                label for="format" { "Format" }
                select #format name="format" {
                    option value="" { "Detect from the file" }
                    option value="csv" { "CSV" }
                    option value="json" { "JSON" }
                    option value="stix" { "STIX 2.1" }
                }
            }
            div.field {
                label for="defaultAction" { "Action of STIX indicators that name none" }
                select #defaultAction name="defaultAction" {
                    @for action in ["Block", "Audit", "Warn", "Allowed", "BlockAndRemediate"] {
                        option value=(action) { (action) }
                    }
                }
            }
            div.actions { button type="submit" #import { "Import" } }
            progress #upload-progress .hidden max="100" {}
            p #upload-progress-label .muted role="status" {}
        }
    };
    page_with_status(signed, status, Section::Import, "Import indicators", body)
}

/// `POST /portal/import` (multipart: `csrf`, `file`, `format`, `defaultAction`).
pub(crate) async fn import(
    State(app): State<AppState>,
    signed: Signed,
    mut multipart: Multipart,
) -> Response {
    let mut csrf = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut format_name = String::new();
    let mut default_action = "Block".to_string();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return unreadable_upload(&signed, &error),
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().unwrap_or_default().to_string();
        let bytes = match field.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return unreadable_upload(&signed, &error),
        };
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "csrf" => csrf = text(),
            "format" => format_name = text(),
            "defaultAction" => default_action = text(),
            "file" => file = Some((file_name, bytes.to_vec())),
            _ => {}
        }
    }
    if !same_secret(&csrf, &signed.session.csrf) {
        return csrf_refusal(&signed);
    }
    if !signed.can_manage() {
        return read_only(&signed);
    }
    let Some((file_name, content)) = file.filter(|(_, content)| !content.is_empty()) else {
        return import_page(
            &signed,
            StatusCode::BAD_REQUEST,
            Some("Choose a file to import."),
        );
    };
    let format = if format_name.is_empty() {
        match detect_format(FilePath::new(&file_name), &content) {
            Some(format) => format,
            None => {
                return import_page(
                    &signed,
                    StatusCode::BAD_REQUEST,
                    Some("The file's format could not be told from its name or content: choose CSV, JSON or STIX."),
                )
            }
        }
    } else {
        match format_name.parse::<Format>() {
            Ok(format) => format,
            Err(why) => return import_page(&signed, StatusCode::BAD_REQUEST, Some(&why)),
        }
    };
    let options = ImportOptions {
        default_action,
        ..ImportOptions::default()
    };
    let parsed = match iocd_formats::parse(format, &content, &options) {
        Ok(parsed) => parsed,
        Err(error) => {
            return import_page(
                &signed,
                StatusCode::BAD_REQUEST,
                Some(&format!("The file was not imported: {error}.")),
            )
        }
    };
    let job = Arc::new(ImportJob {
        file_name,
        format,
        state: Mutex::new(ImportState {
            total: parsed.items.len() + parsed.failed.len(),
            done: parsed.failed.len(),
            refused: parsed
                .failed
                .iter()
                .map(|problem| Refusal {
                    line: problem.line,
                    value: String::new(),
                    reason: problem.reason.clone(),
                })
                .collect(),
            skipped: parsed.skipped.clone(),
            ..ImportState::default()
        }),
    });
    let number = signed.session.add_import(job.clone());
    tokio::spawn(run_import(app, signed.caller.clone(), job, parsed.items));
    see_other(&format!("/portal/import/{number}"))
}

/// Submits the items in batches, recording each refusal with its line.
async fn run_import(
    app: AppState,
    caller: Caller,
    job: Arc<ImportJob>,
    items: Vec<iocd_formats::ImportItem>,
) {
    for chunk in items.chunks(MAX_BATCH) {
        let parsed: Vec<Result<Submission, ValidationError>> = chunk
            .iter()
            .map(|item| parse_submission(&item.body))
            .collect();
        let valid: Vec<Submission> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .cloned()
            .collect();
        let stored = app
            .store
            .submit(
                &caller.write_scope(),
                &caller.actor().via(ChangeSource::Portal),
                valid,
                app.write_limits(),
                time::now(),
            )
            .await;
        let mut stored = match stored {
            Ok(stored) => stored.into_iter(),
            Err(error) => {
                tracing::error!(%error, "portal import failed");
                let mut state = job.state();
                state.failure = Some(
                    "The database failed; the rows from here on were not imported. Import the file again: rows that landed are updated, not duplicated.".to_string(),
                );
                state.finished = true;
                return;
            }
        };
        let mut state = job.state();
        for (item, parsed) in chunk.iter().zip(parsed) {
            let refusal = match parsed {
                Err(invalid) => Some(invalid.message),
                Ok(_) => match stored.next() {
                    Some(Ok(_)) => None,
                    Some(Err(refused)) => Some(ApiError::from(refused).message),
                    None => Some("The store did not answer for this row.".to_string()),
                },
            };
            match refusal {
                None => state.landed += 1,
                Some(reason) => state.refused.push(Refusal {
                    line: item.line,
                    value: item
                        .body
                        .get("indicatorValue")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    reason,
                }),
            }
            state.done += 1;
        }
    }
    let mut state = job.state();
    state.refused.sort_by_key(|r| r.line);
    state.finished = true;
}

/// `GET /portal/import/{n}`: the progress bar, then the report.
pub(crate) async fn import_report(signed: Signed, Path(number): Path<String>) -> Response {
    let Some(job) = number
        .parse::<u64>()
        .ok()
        .and_then(|n| signed.session.import(n))
    else {
        return message_page(
            &signed,
            StatusCode::NOT_FOUND,
            "No such import",
            html! { p { "This session has no import of that number (a session keeps its last five)." }
            p { a href="/portal/import" { "Import a file" } } },
        );
    };
    let state = job.state();
    let percent = (state.done * 100).checked_div(state.total).unwrap_or(100);
    let body = html! {
        h1 { "Import of " (job.file_name) }
        p.muted { "Format: " (job.format.name()) "." }
        label for="import-progress" { (state.done) " of " (state.total) " rows processed" }
        progress #import-progress max=(state.total.max(1)) value=(state.done) { (percent) "%" }
        @if !state.finished {
            p role="status" { "Importing… this page refreshes itself." }
        } @else {
            @if let Some(failure) = &state.failure {
                div.notice.bad role="alert" { (failure) }
            }
            div.notice.good[state.refused.is_empty() && state.failure.is_none()] #import-summary role="status" {
                strong { (state.landed) } " indicators imported (created or updated); "
                strong { (state.refused.len()) } " rows refused"
                @if !state.skipped.is_empty() { "; " (state.skipped.len()) " skipped" }
                "."
            }
            @if !state.refused.is_empty() {
                h2 { "Refused rows" }
                table #refused {
                    thead { tr { th { "Line" } th { "Value" } th { "Why" } } }
                    tbody {
                        @for refusal in &state.refused {
                            tr { td.line { (refusal.line) } td.value { (refusal.value) } td { (refusal.reason) } }
                        }
                    }
                }
            }
            @if !state.skipped.is_empty() {
                h2 { "Skipped rows" }
                table #skipped {
                    thead { tr { th { "Line" } th { "Why" } } }
                    tbody {
                        @for skipped in &state.skipped {
                            tr { td { (skipped.line) } td { (skipped.reason) } }
                        }
                    }
                }
            }
            div.actions {
                a.button href="/portal/indicators" { "Show the indicators" }
                a.button.secondary href="/portal/import" { "Import another file" }
            }
        }
    };
    let finished = state.finished;
    drop(state);
    let mut response = page_with_status(&signed, StatusCode::OK, Section::Import, "Import", body);
    if !finished {
        response
            .headers_mut()
            .insert("refresh", HeaderValue::from_static("1"));
    }
    response
}

/// The import page again, saying why the multipart upload could not be read.
fn unreadable_upload(
    signed: &Signed,
    error: &axum::extract::multipart::MultipartError,
) -> Response {
    import_page(
        signed,
        error.status(),
        Some(&format!(
            "The upload could not be read: {}",
            error.body_text()
        )),
    )
}

/// `GET /portal/export?format=csv&tab=…`: every indicator of the list's current filter (all
/// pages), as a file.
pub(crate) async fn export(
    State(app): State<AppState>,
    signed: Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    if !signed.can_read() {
        return no_role(&signed);
    }
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let format = match super::field(&pairs, "format").parse::<Format>() {
        Ok(format) => format,
        Err(why) => {
            return message_page(
                &signed,
                StatusCode::BAD_REQUEST,
                "Export",
                html! { p { (why) } },
            )
        }
    };
    let params = ListParams::parse(raw.as_deref());
    let now = time::now();
    let query = match parse_list_query(&params.odata_pairs(now)) {
        Ok(query) => query,
        Err(error) => {
            return message_page(
                &signed,
                StatusCode::BAD_REQUEST,
                "Export",
                html! { p { "The filter could not be applied: " (error.to_string()) } },
            )
        }
    };
    let scope = signed.caller.read_scope();
    let mut entities: Vec<Value> = Vec::new();
    let mut skip = 0u64;
    loop {
        let request = ListRequest {
            filter: query.filter.clone(),
            order_by: query.order_by.clone(),
            skip,
            take: u64::from(MAX_TOP),
            per_type: Vec::new(),
            only_ids: None,
        };
        let page = match app.store.list(&scope, &request, now).await {
            Ok(page) => page,
            Err(error) => return store_failure(&signed, &error),
        };
        skip += page.indicators.len() as u64;
        entities.extend(
            page.indicators
                .iter()
                .filter_map(|i| serde_json::to_value(i).ok()),
        );
        if !page.more || entities.len() >= MAX_EXPORT_ROWS {
            break;
        }
    }
    entities.truncate(MAX_EXPORT_ROWS);
    let bytes = match iocd_formats::export(format, &entities) {
        Ok(bytes) => bytes,
        Err(error) => {
            return message_page(
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Export",
                html! { p { "The indicators could not be written as " (format.name()) ": " (error.to_string()) } },
            )
        }
    };
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
        Format::Stix => ("application/stix+json;version=2.1", "stix.json"),
    };
    let disposition = format!(
        "attachment; filename=\"indicators-{}.{extension}\"",
        params.tab.slug()
    );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response()
}
