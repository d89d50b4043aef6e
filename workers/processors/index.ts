// Every queue that has work in this version; kite and audit-export join with their features.
import type { QueueDeclaration } from '../declaration';
import { email } from './email';
import { events } from './events';
// Audit trail (issue 15)
import { auditExport } from './audit-export';

export const DECLARATIONS: QueueDeclaration[] = [
  email,
  events,
  // Audit trail (issue 15)
  auditExport,
];
