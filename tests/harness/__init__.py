"""What the tests and benchmarks share to run things for real (a helper
package, not tests: nothing here is collected).

- ``repo``: the repository's paths and its ``.env.example``;
- ``net``: one ``free_port``, waiting for a port, a URL or a condition, and
  one ``ServerThread`` (aiohttp apps served from an event loop in a thread);
- ``tls``: a throwaway CA and a server certificate signed by it;
- ``identity``: the emulated Azure AD's packaged test identity, a settable clock;
- ``emulator``: the emulator as a process (``EmulatorProcess``), its
  defaults, and reading its instances;
- ``hub``: a JupyterHub with the AML spawner as a process (``Hub``), and the
  product's own login configured for it;
- ``login``: signing in through the emulated Azure AD's form, as a browser;
- ``kernel``: running code in a kernel of a user's server over its websocket.
"""
