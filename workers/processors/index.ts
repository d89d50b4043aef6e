// Every queue that has work in this version; kite and audit-export join with their features.
import type { QueueDeclaration } from '../declaration';
import { email } from './email';
import { events } from './events';
// Trading accounts on Kite Connect (issue 14)
import { kite } from './kite';

export const DECLARATIONS: QueueDeclaration[] = [email, events, kite];
