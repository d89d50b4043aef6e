// Where the operators' pages live.
export const BULL_BOARD_PATH = '/admin/queues';
export const LOGIN_PATH = '/admin/login';
export const LOGOUT_PATH = '/admin/logout';
export const FONTS_PATH = '/admin/fonts';
