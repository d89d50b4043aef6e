// Sends one email_messages row. Idempotent: a row already sent is skipped, so a job that runs twice
// sends once, except when a worker dies between the SMTP answer and the update (at-least-once, as
// DESIGN.md accepts for email).
import nodemailer, { type Transporter } from 'nodemailer';
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { Kms } from '../crypto/kms';
import type { Logger } from '../logger';
import { emailContext } from './outbox';
import { renderEmail, type TemplateName, type TemplateParams } from './templates';

export interface Mailer {
  /** Null when no SMTP host is configured (development): messages go to the log instead. */
  transport: Transporter | null;
  from: string;
}

export function createMailer(config: Pick<Config, 'smtp' | 'queues'>): Mailer {
  const { host, port, username, password, from, tls } = config.smtp;
  if (!host) return { transport: null, from };
  const transport = nodemailer.createTransport({
    // Reuse connections: a new SMTP handshake per message costs more than the message itself.
    pool: true,
    maxConnections: config.queues.concurrency.email,
    host,
    port,
    secure: tls && port === 465,
    requireTLS: tls && port !== 465,
    ignoreTLS: !tls,
    auth: username ? { user: username, pass: password } : undefined,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  return { transport, from };
}

export function maskEmail(address: string): string {
  const [local, domain] = address.split('@');
  return `${local.slice(0, 1)}***@${domain ?? ''}`;
}

export interface SendEmailDeps {
  db: Knex;
  kms: Kms;
  mailer: Mailer;
  logger: Logger;
  appName: string;
}

export async function sendEmailMessage(deps: SendEmailDeps, emailId: string): Promise<'sent' | 'skipped'> {
  // Claims an attempt and reads the row in one round trip; a row no longer pending is skipped.
  const [row] = await deps
    .db('email_messages')
    .where({ id: emailId, status: 'pending' })
    .increment('attempts', 1)
    .returning(['template', 'to_address', 'params_encrypted']);
  if (!row) return 'skipped';
  const to = row.to_address;
  if (!to) {
    // Only a deleted account's rows lose their address, and its pending mail is cancelled with it.
    await deps.db('email_messages').where({ id: emailId }).update({ status: 'cancelled' });
    return 'skipped';
  }
  const params = JSON.parse(deps.kms.decrypt(row.params_encrypted, emailContext(emailId))) as TemplateParams[TemplateName];
  const message = renderEmail(deps.appName, row.template as TemplateName, params);
  if (deps.mailer.transport) {
    await deps.mailer.transport.sendMail({
      from: deps.mailer.from,
      to,
      subject: message.subject,
      text: message.text,
      html: message.html,
    });
  } else {
    // Development without SMTP: say that the email exists, but not its body (it may hold a token).
    deps.logger.info(
      { emailId, template: row.template, to: maskEmail(to), subject: message.subject },
      'email not sent: SMTP_HOST is empty (development); body withheld from the log',
    );
  }
  await deps
    .db('email_messages')
    .where({ id: emailId, status: 'pending' })
    .update({ status: 'sent', sent_at: deps.db.fn.now(), last_error: null });
  return 'sent';
}

/** Marks a row failed once its job has used every attempt (it stays visible in Bull Board too). */
export async function markEmailFailed(db: Knex, emailId: string, reason: string): Promise<void> {
  await db('email_messages')
    .where({ id: emailId, status: 'pending' })
    .update({ status: 'failed', last_error: reason.slice(0, 500) });
}
