// Every queue of the service, each one declaration.
import type { QueueDeclaration } from '../declaration';
import { email } from './email';
import { events } from './events';
// Trading accounts on Kite Connect (issue 14)
import { kite } from './kite';
// Audit trail (issue 15)
import { auditExport } from './audit-export';

export const DECLARATIONS: QueueDeclaration[] = [email, events, kite, auditExport];
