// Every email the service sends, as text and HTML. Parameters are escaped in the HTML; links are
// built from EMAIL_LINK_BASE_URL by the caller, never from a request's Host header.

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

export interface TemplateParams {
  verify_email: { name: string; link: string; expiresInHours: number };
  new_device_login: { name: string; when: string; ip: string | null; userAgent: string | null; country: string | null };
  password_reset: { name: string; link: string; expiresInMinutes: number };
  password_reset_completed: { name: string };
  password_changed: { name: string };
  mfa_enabled: { name: string };
  mfa_disabled: { name: string };
  // Account lifecycle (admin API, email change).
  mfa_reset_by_admin: { name: string };
  email_change_confirm: { name: string; link: string; expiresInHours: number };
  email_change_requested: { name: string };
}

export type TemplateName = keyof TemplateParams;

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

function compose(appName: string, subject: string, paragraphs: string[], link?: { label: string; url: string }): RenderedEmail {
  const text = [...paragraphs, ...(link ? [`${link.label}: ${link.url}`] : []), '', `— ${appName}`].join('\n\n');
  const html = [
    '<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">',
    ...paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    ...(link ? [`<p><a href="${escapeHtml(link.url)}">${escapeHtml(link.label)}</a></p>`] : []),
    `<p style="color:#666">— ${escapeHtml(appName)}</p>`,
    '</body></html>',
  ].join('\n');
  return { subject, text, html };
}

const notYou = 'If this was not you, reset your password and contact support at once.';

export function renderEmail<T extends TemplateName>(appName: string, template: T, params: TemplateParams[T]): RenderedEmail {
  const p = params as TemplateParams[TemplateName] & Record<string, unknown>;
  const hello = `Hello ${p.name},`;
  switch (template) {
    case 'verify_email': {
      const q = params as TemplateParams['verify_email'];
      return compose(
        appName,
        'Confirm your email address',
        [
          hello,
          `Confirm your email address to finish setting up your account. The link works once and expires in ${q.expiresInHours} hours.`,
        ],
        { label: 'Confirm email', url: q.link },
      );
    }
    case 'new_device_login': {
      const q = params as TemplateParams['new_device_login'];
      const where = [q.ip && `IP ${q.ip}`, q.country && `country ${q.country}`, q.userAgent && `device "${q.userAgent}"`]
        .filter(Boolean)
        .join(', ');
      return compose(appName, 'New sign-in to your account', [
        hello,
        `Your account was signed in to from a new device at ${q.when}${where ? ` (${where})` : ''}.`,
        notYou,
      ]);
    }
    case 'password_reset': {
      const q = params as TemplateParams['password_reset'];
      return compose(
        appName,
        'Reset your password',
        [
          hello,
          `Someone asked to reset your password. The link works once and expires in ${q.expiresInMinutes} minutes. If it was not you, ignore this email.`,
        ],
        { label: 'Reset password', url: q.link },
      );
    }
    case 'password_reset_completed':
      return compose(appName, 'Your password was reset', [hello, 'Your password was reset and every session was signed out.', notYou]);
    case 'password_changed':
      return compose(appName, 'Your password was changed', [hello, 'Your password was changed.', notYou]);
    case 'mfa_enabled':
      return compose(appName, 'Two-factor authentication is on', [
        hello,
        'Two-factor authentication was turned on for your account.',
        notYou,
      ]);
    case 'mfa_disabled':
      return compose(appName, 'Two-factor authentication is off', [
        hello,
        'Two-factor authentication was turned off for your account.',
        notYou,
      ]);
    // Account lifecycle (admin API, email change).
    case 'mfa_reset_by_admin':
      return compose(appName, 'Two-factor authentication was reset', [
        hello,
        'At your request, support turned off two-factor authentication for your account and signed out every session. Sign in with your password and turn it on again with your new device.',
        notYou,
      ]);
    case 'email_change_confirm': {
      const q = params as TemplateParams['email_change_confirm'];
      return compose(
        appName,
        'Confirm your new email address',
        [
          hello,
          `Confirm this address to make it the email of your account. The link works once and expires in ${q.expiresInHours} hours. If you did not ask for this, ignore this email.`,
        ],
        { label: 'Confirm new email', url: q.link },
      );
    }
    case 'email_change_requested':
      return compose(appName, 'Your email address is about to change', [
        hello,
        'Someone signed in to your account asked to change its email address; the change happens when the link sent to the new address is used.',
        notYou,
      ]);
    default:
      throw new Error(`unknown email template ${String(template)}`);
  }
}
