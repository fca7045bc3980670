/** REST API shapes, as in docs/CONTRACT.md. */

export interface User {
  id: string | number;
  name: string;
  email: string;
  verified: boolean;
  team?: string | null;
}

export type MeetingType = 'public' | 'private' | 'team';

export interface Meeting {
  code: string;
  title: string;
  start: string;
  duration_minutes: number;
  type: MeetingType;
  host_name: string;
  link: string;
  cancelled: boolean;
  role?: 'host' | 'invitee';
  invitees?: string[];
  /** Two-person calls may go peer to peer (the host's switch). */
  p2p?: boolean;
}

export interface MeetingInput {
  title: string;
  start: string;
  duration_minutes: number;
  type: MeetingType;
  invitees: string[];
}

export interface CertHash {
  algorithm: string;
  value_hex: string;
}

export interface JoinAnswer {
  status: 'ready' | 'waiting';
  token: string;
  expires_in_secs: number;
  participant: { name: string; email?: string; role: 'host' | 'member' | 'guest' };
  media: {
    webtransport?: { url: string; cert_hashes?: CertHash[] } | null;
    websocket?: { url: string } | null;
  };
  message?: string;
  /** Direct calls for two (PROTOCOL.md §5.12); absent from older servers: off. */
  p2p?: { enabled: boolean; server_enabled: boolean; ice_servers: RTCIceServer[] };
}

export interface GuestInfo {
  name?: string;
  email?: string;
}

/** An error answer from the API (or the network), with the server's human message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}
