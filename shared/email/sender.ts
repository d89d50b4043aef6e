// Sends one email_messages row. Idempotent: a row already sent is skipped, so a job that runs twice
// sends once, except when a worker dies between the SMTP answer and the update (at-least-once, as
// DESIGN.md accepts for email). In development without SMTP_HOST the same message is written to a
// folder as an .eml file instead (DESIGN.md, "Email in development").
import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type StreamTransport from 'nodemailer/lib/stream-transport';
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { Kms } from '../crypto/kms';
import type { Logger } from '../logger';
import { emailContext } from './outbox';
import { renderEmail, type TemplateName, type TemplateParams } from './templates';

/**
 * Where messages go: an SMTP server, or, in development without SMTP_HOST (the config refuses
 * that anywhere else), `.eml` files in `dir`.
 */
export type Mailer =
  | { kind: 'smtp'; transport: Transporter<SMTPPool.SentMessageInfo>; from: string }
  | { kind: 'files'; transport: Transporter<StreamTransport.SentMessageInfo>; from: string; dir: string };

export function createMailer(config: Pick<Config, 'smtp' | 'queues'>): Mailer {
  const { host, port, username, password, from, tls, devDir } = config.smtp;
  // nodemailer builds the whole message (headers, both bodies, encodings) as it would for SMTP.
  if (!host) return { kind: 'files', transport: nodemailer.createTransport({ streamTransport: true, buffer: true }), from, dir: devDir };
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
  return { kind: 'smtp', transport, from };
}

/**
 * Writes one message as `<time>-<email id>.eml` (sortable, one file per attempt), readable by its
 * owner only: it may hold a one-time link. Written aside and renamed, so a reader never sees half.
 */
async function writeMessageFile(dir: string, emailId: string, message: Buffer): Promise<string> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${emailId}.eml`);
  await fs.writeFile(`${file}.partial`, message, { mode: 0o600 });
  await fs.rename(`${file}.partial`, file);
  return file;
}

export function maskEmail(address: string): string {
  const [local, domain] = address.split('@');
  return `${local.slice(0, 1)}***@${domain ?? ''}`;
}

/**
 * The same for every attempt at one row, so a receiver can recognise the duplicate that a worker
 * dying between the SMTP answer and the update may send (RFC 5322 Message-ID, the sender's domain).
 */
export function messageIdFor(emailId: string, from: string): string {
  const domain = /@([^@>\s]+)>?\s*$/.exec(from)?.[1] ?? 'user-service.invalid';
  return `<${emailId}@${domain}>`;
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
  const mail = {
    from: deps.mailer.from,
    to,
    messageId: messageIdFor(emailId, deps.mailer.from),
    subject: message.subject,
    text: message.text,
    html: message.html,
  };
  if (deps.mailer.kind === 'smtp') {
    await deps.mailer.transport.sendMail(mail);
  } else {
    const sent = await deps.mailer.transport.sendMail(mail);
    // A Buffer, not a stream: the transport was made with `buffer: true`.
    const file = await writeMessageFile(deps.mailer.dir, emailId, sent.message as Buffer);
    // The file, never the body: the body may hold a one-time link.
    deps.logger.info(
      { emailId, template: row.template, to: maskEmail(to), subject: message.subject, file },
      'email written to a file (development without SMTP_HOST)',
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
