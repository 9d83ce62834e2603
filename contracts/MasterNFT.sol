// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title MasterNFT: the shares of one master recording, token ids 1..totalSupply.
/// @notice Minimal ERC-721 core. It emits only the AudiFi `Transfer` event (no approvals,
///         so no Approval/ApprovalForAll events); the admin mints, moves and burns in batches
///         so that one transaction can emit hundreds of events.
contract MasterNFT {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    error NotAdmin();
    error NotAuthorized();
    error NonexistentToken(uint256 tokenId);
    error SupplyExceeded();
    error ZeroAddress();
    error LengthMismatch();

    address public immutable admin;
    uint256 public immutable totalSupply;
    /// @notice Number of ids minted so far (ids 1..minted exist or were burned).
    uint256 public minted;

    mapping(uint256 => address) private _owners;
    mapping(address => uint256) private _balances;

    constructor(address admin_, uint256 totalSupply_) {
        admin = admin_;
        totalSupply = totalSupply_;
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin();
        _;
    }

    function ownerOf(uint256 tokenId) public view returns (address owner) {
        owner = _owners[tokenId];
        if (owner == address(0)) revert NonexistentToken(tokenId);
    }

    function balanceOf(address owner) external view returns (uint256) {
        if (owner == address(0)) revert ZeroAddress();
        return _balances[owner];
    }

    /// @notice Mints the next `count` ids to `to`; ids never exceed totalSupply.
    function mintBatch(address to, uint256 count) external onlyAdmin {
        if (to == address(0)) revert ZeroAddress();
        uint256 first = minted + 1;
        uint256 last = minted + count;
        if (last > totalSupply) revert SupplyExceeded();
        minted = last;
        _balances[to] += count;
        for (uint256 id = first; id <= last; ++id) {
            _owners[id] = to;
            emit Transfer(address(0), to, id);
        }
    }

    /// @notice The token's owner (or the admin) moves it.
    function transferFrom(address from, address to, uint256 tokenId) external {
        if (msg.sender != from && msg.sender != admin) revert NotAuthorized();
        if (ownerOf(tokenId) != from) revert NotAuthorized();
        _move(from, to, tokenId);
    }

    /// @notice Load generation: moves tokenIds[i] to to[i], one Transfer each.
    function adminTransferBatch(uint256[] calldata tokenIds, address[] calldata to)
        external
        onlyAdmin
    {
        if (tokenIds.length != to.length) revert LengthMismatch();
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            _move(ownerOf(tokenIds[i]), to[i], tokenIds[i]);
        }
    }

    /// @notice The token's owner (or the admin) burns it: Transfer to 0x0.
    function burn(uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        if (msg.sender != owner && msg.sender != admin) revert NotAuthorized();
        _burn(owner, tokenId);
    }

    /// @notice Load generation: burns every id, one Transfer to 0x0 each.
    function adminBurnBatch(uint256[] calldata tokenIds) external onlyAdmin {
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            _burn(ownerOf(tokenIds[i]), tokenIds[i]);
        }
    }

    function _move(address from, address to, uint256 tokenId) private {
        if (to == address(0)) revert ZeroAddress();
        _balances[from] -= 1;
        _balances[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function _burn(address owner, uint256 tokenId) private {
        _balances[owner] -= 1;
        delete _owners[tokenId];
        emit Transfer(owner, address(0), tokenId);
    }
}
