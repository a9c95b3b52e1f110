//! The administrators' page (`Iocd.Admin`): the tenant's apps and users (create, change roles,
//! delete; a new app's secret or a generated password is shown once), the tenant's quota use and
//! the current rate-limit state of each app. The rules are `iocd_identity`'s (`register_app`,
//! `create_user`, `set_app_roles`, `set_user_roles`); this module renders and calls them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use iocd_domain::time;
use iocd_identity::{
    create_user, portal_client_id, register_app, set_app_roles, set_user_roles, RegisterError,
    Role, UserRole,
};
use iocd_ratelimit::Family;
use maud::{html, Markup};

use super::forms::store_failure;
use super::{message_page, page_with_status, see_other, Section, Signed, SignedForm};
use crate::AppState;

/// What was just created, for showing its secret once.
#[derive(Debug, Clone)]
pub(crate) enum Created {
    App {
        name: String,
        client_id: String,
        secret: String,
    },
    User {
        upn: String,
        password: Option<String>,
    },
}

fn not_admin(signed: &Signed) -> Response {
    message_page(
        signed,
        StatusCode::FORBIDDEN,
        "Administrators only",
        html! { p { "This page is for users with the role " code { "Iocd.Admin" } "." } },
    )
}

/// The families whose limits the page shows, with their names.
const SHOWN_FAMILIES: [(Family, &str); 6] = [
    (Family::Submit, "submit"),
    (Family::List, "list"),
    (Family::Get, "get"),
    (Family::Delete, "delete"),
    (Family::Import, "import"),
    (Family::BatchDelete, "batch delete"),
];

/// `GET /portal/admin`.
pub(crate) async fn show(State(app): State<AppState>, signed: Signed) -> Response {
    if !signed.is_admin() {
        return not_admin(&signed);
    }
    admin_page(&app, &signed, StatusCode::OK, None).await
}

async fn admin_page(
    app: &AppState,
    signed: &Signed,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let tenant = &signed.caller.tenant_id;
    let store = app.identity.store();
    let (apps, users, active) = match tokio::try_join!(
        store.list_apps(Some(tenant)),
        store.list_users(Some(tenant)),
        app.store.count_active(tenant, time::now())
    ) {
        Ok(found) => found,
        Err(error) => return store_failure(signed, &error),
    };
    let portal_client = portal_client_id(tenant);
    let mut usage: Vec<Vec<Option<iocd_ratelimit::Usage>>> = Vec::with_capacity(apps.len());
    for registered in &apps {
        let mut per_family = Vec::new();
        for (family, _) in SHOWN_FAMILIES {
            per_family.push(
                app.rate_limiter
                    .usage(tenant, &registered.client_id, family)
                    .await
                    .ok()
                    .flatten(),
            );
        }
        usage.push(per_family);
    }
    let created = signed.session.take_once();
    let limit = app.config.max_active_indicators;
    let me = signed.caller.user.as_ref().map(|u| u.upn.to_lowercase());
    let body = html! {
        h1 { "Administration" }
        p.muted { "Tenant " code { (tenant) } }
        @if let Some(error) = error {
            div.notice.bad role="alert" #admin-error { (error) }
        }
        @if let Some(created) = &created { (created_notice(created)) }

        h2 { "Quota" }
        p #quota {
            strong { (active) } " active indicators"
            @match limit {
                Some(limit) => {
                    " of " strong { (limit) } " allowed"
                    progress max=(limit.max(1)) value=(active.min(limit)) {}
                }
                None => { " (no limit)" }
            }
        }

        h2 { "Apps" }
        table #apps {
            thead { tr { th { "Name" } th { "Client id" } th { "Roles" } th { "Rate limits now (calls left / limit per window)" } th {} } }
            tbody {
                @for (registered, usage) in apps.iter().zip(&usage) {
                    tr data-client-id=(registered.client_id) {
                        td { (registered.display_name) }
                        td { code { (registered.client_id) } }
                        td {
                            @if registered.client_id == portal_client {
                                span.muted { "built-in: signs people in to the portal" }
                            } @else {
                                form method="post" action={ "/portal/admin/apps/" (registered.client_id) "/roles" } {
                                    (signed.csrf_field())
                                    (role_boxes(&Role::ALL.map(Role::as_str), &registered.roles))
                                    button.secondary type="submit" { "Save roles" }
                                }
                            }
                        }
                        td { (usage_cell(usage)) }
                        td {
                            @if registered.client_id != portal_client {
                                form method="post" action={ "/portal/admin/apps/" (registered.client_id) "/delete" }
                                    data-confirm="Delete this app? Its tokens stop working when they expire." {
                                    (signed.csrf_field())
                                    button.danger type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if apps.len() <= 1 {
            p.empty { "No apps yet besides the portal's own. Create one below for a SOAR playbook or a feed connector; its secret is shown once." }
        }
        h3 { "Create an app" }
        form.stacked #create-app method="post" action="/portal/admin/apps" {
            (signed.csrf_field())
            div.field { label for="app-name" { "Name" } input #app-name type="text" name="name" placeholder="SOAR playbook"; }
            div.field { label { "Roles" } (role_boxes(&Role::ALL.map(Role::as_str), &["Ti.ReadWrite.All".to_string()])) }
            button type="submit" { "Create app" }
        }

        h2 { "Users" }
        table #users {
            thead { tr { th { "User" } th { "Name" } th { "Roles" } th {} } }
            tbody {
                @for user in &users {
                    tr data-upn=(user.upn) {
                        td { (user.upn) }
                        td { (user.display_name) }
                        td {
                            form method="post" action={ "/portal/admin/users/" (user.upn) "/roles" } {
                                (signed.csrf_field())
                                (role_boxes(&UserRole::ALL.map(UserRole::as_str), &user.roles))
                                button.secondary type="submit" { "Save roles" }
                            }
                        }
                        td {
                            @if me.as_deref() != Some(user.upn.to_lowercase().as_str()) {
                                form method="post" action={ "/portal/admin/users/" (user.upn) "/delete" }
                                    data-confirm="Delete this user? They are signed out everywhere." {
                                    (signed.csrf_field())
                                    button.danger type="submit" { "Delete" }
                                }
                            } @else {
                                span.muted { "you" }
                            }
                        }
                    }
                }
            }
        }
        h3 { "Create a user" }
        form.stacked #create-user method="post" action="/portal/admin/users" {
            (signed.csrf_field())
            div.field { label for="upn" { "Sign-in name" } input #upn type="email" name="upn" placeholder="alice@contoso.example"; }
            div.field { label for="user-name" { "Display name" } input #user-name type="text" name="name" placeholder="Alice Analyst"; }
            div.field { label { "Roles" } (role_boxes(&UserRole::ALL.map(UserRole::as_str), &["Iocd.Indicators.Read".to_string()])) }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="new-password";
                p.hint { "Empty: iocd generates one and shows it once. At least " (iocd_identity::MIN_PASSWORD_CHARS) " characters." }
            }
            button type="submit" { "Create user" }
        }
    };
    page_with_status(signed, status, Section::Admin, "Administration", body)
}

fn role_boxes(all: &[&str], held: &[String]) -> Markup {
    html! {
        @for role in all {
            label.inline {
                input type="checkbox" name="role" value=(role) checked[held.iter().any(|h| h == role)];
                " " (role) " "
            }
        }
    }
}

fn usage_cell(usage: &[Option<iocd_ratelimit::Usage>]) -> Markup {
    html! {
        @if usage.iter().all(Option::is_none) {
            span.muted { "not tracked" }
        } @else {
            ul.usage {
                @for ((_, name), usage) in SHOWN_FAMILIES.iter().zip(usage) {
                    @if let Some(usage) = usage {
                        li {
                            (name) ": "
                            @for (i, window) in usage.windows.iter().enumerate() {
                                @if i > 0 { ", " }
                                (window.remaining) "/" (window.limit) " per " (period_text(window.period))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn period_text(period: std::time::Duration) -> String {
    let secs = period.as_secs();
    match secs {
        60 => "minute".to_string(),
        3600 => "hour".to_string(),
        86400 => "day".to_string(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} s"),
    }
}

fn created_notice(created: &Created) -> Markup {
    html! {
        div.notice.good #created role="status" {
            @match created {
                Created::App { name, client_id, secret } => {
                    p { "App " strong { (name) } " created. Client id: " span.secret #created-client-id { (client_id) } }
                    p { "Client secret (shown only now; copy it): " span.secret #created-secret { (secret) } }
                }
                Created::User { upn, password } => {
                    p { "User " strong { (upn) } " created." }
                    @if let Some(password) = password {
                        p { "Password (shown only now; give it to them): " span.secret #created-secret { (password) } }
                    }
                }
            }
        }
    }
}

/// The admin page again with `why` above it, as a 400: a change the rules refuse.
async fn bad_request(app: &AppState, signed: &Signed, why: &str) -> Response {
    admin_page(app, signed, StatusCode::BAD_REQUEST, Some(why)).await
}

/// What a role change or a deletion answers: back to the admin page when it was done, a 404
/// saying `missing` when there was nothing to change, the refusal otherwise.
async fn done_or_missing(
    app: &AppState,
    signed: &Signed,
    outcome: Result<bool, RegisterError>,
    missing: &str,
) -> Response {
    match outcome {
        Ok(true) => see_other("/portal/admin"),
        Ok(false) => admin_page(app, signed, StatusCode::NOT_FOUND, Some(missing)).await,
        Err(error) => refused(app, signed, error).await,
    }
}

async fn refused(app: &AppState, signed: &Signed, error: RegisterError) -> Response {
    match error {
        RegisterError::Invalid(why) => {
            admin_page(app, signed, StatusCode::BAD_REQUEST, Some(&why)).await
        }
        RegisterError::Store(error) => store_failure(signed, &error),
        RegisterError::Internal(why) => {
            tracing::error!(%why, "portal administration failed");
            message_page(
                signed,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not done",
                html! { p { "The server failed; nothing was changed. Try again." } },
            )
        }
    }
}

fn parse_roles<T>(form: &SignedForm, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    form.all("role")
        .into_iter()
        .map(|name| parse(name).ok_or_else(|| format!("'{name}' is not a role")))
        .collect()
}

/// `POST /portal/admin/apps`: registers an app; its secret is shown once.
pub(crate) async fn create_app(State(app): State<AppState>, form: SignedForm) -> Response {
    let signed = &form.signed;
    if !signed.is_admin() {
        return not_admin(signed);
    }
    let roles = match parse_roles(&form, Role::parse) {
        Ok(roles) => roles,
        Err(why) => return bad_request(&app, signed, &why).await,
    };
    let name = form.get("name").trim().to_string();
    match register_app(
        app.identity.store().as_ref(),
        &signed.caller.tenant_id,
        &name,
        &roles,
    )
    .await
    {
        Ok(credentials) => {
            signed.session.show_once(Created::App {
                name,
                client_id: credentials.client_id,
                secret: credentials.client_secret,
            });
            see_other("/portal/admin")
        }
        Err(error) => refused(&app, signed, error).await,
    }
}

/// `POST /portal/admin/apps/{client_id}/roles`.
pub(crate) async fn app_roles(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    form: SignedForm,
) -> Response {
    let signed = &form.signed;
    if !signed.is_admin() {
        return not_admin(signed);
    }
    let roles = match parse_roles(&form, Role::parse) {
        Ok(roles) => roles,
        Err(why) => return bad_request(&app, signed, &why).await,
    };
    if client_id == portal_client_id(&signed.caller.tenant_id) {
        return bad_request(
            &app,
            signed,
            "The portal's own client holds no roles: its users' roles decide.",
        )
        .await;
    }
    let outcome = set_app_roles(
        app.identity.store().as_ref(),
        &signed.caller.tenant_id,
        &client_id,
        &roles,
    )
    .await;
    done_or_missing(&app, signed, outcome, "No such app.").await
}

/// `POST /portal/admin/apps/{client_id}/delete`.
pub(crate) async fn delete_app(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    form: SignedForm,
) -> Response {
    let signed = &form.signed;
    if !signed.is_admin() {
        return not_admin(signed);
    }
    if client_id == portal_client_id(&signed.caller.tenant_id) {
        return bad_request(
            &app,
            signed,
            "The portal's own client cannot be deleted here.",
        )
        .await;
    }
    let outcome = app
        .identity
        .store()
        .delete_app(&signed.caller.tenant_id, &client_id)
        .await
        .map_err(RegisterError::Store);
    done_or_missing(&app, signed, outcome, "No such app.").await
}

/// `POST /portal/admin/users`: creates a user; a generated password is shown once.
pub(crate) async fn create_user_form(State(app): State<AppState>, form: SignedForm) -> Response {
    let signed = &form.signed;
    if !signed.is_admin() {
        return not_admin(signed);
    }
    let roles = match parse_roles(&form, UserRole::parse) {
        Ok(roles) => roles,
        Err(why) => return bad_request(&app, signed, &why).await,
    };
    let password = Some(form.get("password")).filter(|p| !p.is_empty());
    match create_user(
        app.identity.store().as_ref(),
        &signed.caller.tenant_id,
        form.get("name"),
        form.get("upn"),
        &roles,
        password,
    )
    .await
    {
        Ok(user) => {
            signed.session.show_once(Created::User {
                upn: user.upn,
                password: user.password,
            });
            see_other("/portal/admin")
        }
        Err(error) => refused(&app, signed, error).await,
    }
}

/// Whether `upn` is the signed-in administrator (who may not remove themselves).
fn is_me(signed: &Signed, upn: &str) -> bool {
    signed
        .caller
        .user
        .as_ref()
        .is_some_and(|u| u.upn.eq_ignore_ascii_case(upn))
}

/// `POST /portal/admin/users/{upn}/roles`.
pub(crate) async fn user_roles(
    State(app): State<AppState>,
    Path(upn): Path<String>,
    form: SignedForm,
) -> Response {
    let signed = &form.signed;
    if !signed.is_admin() {
        return not_admin(signed);
    }
    let roles = match parse_roles(&form, UserRole::parse) {
        Ok(roles) => roles,
        Err(why) => return bad_request(&app, signed, &why).await,
    };
    if is_me(signed, &upn) && !roles.contains(&UserRole::Admin) {
        return bad_request(
            &app,
            signed,
            "You cannot take the administrator role from yourself; another administrator can.",
        )
        .await;
    }
    let outcome = set_user_roles(
        app.identity.store().as_ref(),
        &signed.caller.tenant_id,
        &upn,
        &roles,
    )
    .await;
    done_or_missing(&app, signed, outcome, "No such user.").await
}

/// `POST /portal/admin/users/{upn}/delete`.
pub(crate) async fn delete_user(
    State(app): State<AppState>,
    Path(upn): Path<String>,
    form: SignedForm,
) -> Response {
    let signed = &form.signed;
    if !signed.is_admin() {
        return not_admin(signed);
    }
    if is_me(signed, &upn) {
        return bad_request(
            &app,
            signed,
            "You cannot delete yourself; another administrator can.",
        )
        .await;
    }
    let outcome = app
        .identity
        .store()
        .delete_user(&signed.caller.tenant_id, &upn)
        .await
        .map_err(RegisterError::Store);
    done_or_missing(&app, signed, outcome, "No such user.").await
}
