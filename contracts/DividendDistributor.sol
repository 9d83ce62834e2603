// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {MasterNFT} from "./MasterNFT.sol";

/// @title DividendDistributor: dividends of one master, paid per NFT share.
/// @notice A deposit fixes amountPerShare = amount / nft.totalSupply; each token id can claim
///         it once per dividend, credited to the token's owner at claim time. Native credits
///         are withdrawable; token deposits are only recorded (the events are the interface).
contract DividendDistributor {
    event DividendDeposited(
        uint256 indexed dividendId,
        address indexed payer,
        address token,
        uint256 amount,
        uint256 amountPerShare
    );
    event DividendClaimed(
        uint256 indexed dividendId,
        address indexed holder,
        uint256 indexed tokenId,
        uint256 amount
    );

    error UnknownDividend(uint256 dividendId);
    error AlreadyClaimed(uint256 dividendId, uint256 tokenId);
    error ZeroAddress();
    error PayoutFailed();

    struct Dividend {
        address token;
        uint256 amountPerShare;
    }

    MasterNFT public immutable nft;
    /// @notice Dividend ids are 1..dividendsCount.
    uint256 public dividendsCount;
    mapping(uint256 => Dividend) public dividends;
    /// @notice holder => token (0x0 = native) => amount claimed and not yet withdrawn.
    mapping(address => mapping(address => uint256)) public credited;
    /// @dev dividendId => tokenId / 256 => bitmap of claimed token ids.
    mapping(uint256 => mapping(uint256 => uint256)) private _claimedBits;

    constructor(MasterNFT nft_) {
        nft = nft_;
    }

    function depositNative() external payable returns (uint256) {
        return _deposit(address(0), msg.value);
    }

    function depositToken(address token, uint256 amount) external returns (uint256) {
        if (token == address(0)) revert ZeroAddress();
        return _deposit(token, amount);
    }

    function claimed(uint256 dividendId, uint256 tokenId) public view returns (bool) {
        return (_claimedBits[dividendId][tokenId >> 8] >> (tokenId & 0xff)) & 1 == 1;
    }

    /// @notice Credits each token's current owner once per dividend; one event per token.
    function claimBatch(uint256 dividendId, uint256[] calldata tokenIds) external {
        if (dividendId == 0 || dividendId > dividendsCount) revert UnknownDividend(dividendId);
        Dividend memory d = dividends[dividendId];
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            uint256 tokenId = tokenIds[i];
            if (claimed(dividendId, tokenId)) revert AlreadyClaimed(dividendId, tokenId);
            _claimedBits[dividendId][tokenId >> 8] |= 1 << (tokenId & 0xff);
            address holder = nft.ownerOf(tokenId);
            credited[holder][d.token] += d.amountPerShare;
            emit DividendClaimed(dividendId, holder, tokenId, d.amountPerShare);
        }
    }

    /// @notice Pays the caller's native credit.
    function withdrawNative() external {
        uint256 amount = credited[msg.sender][address(0)];
        credited[msg.sender][address(0)] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert PayoutFailed();
    }

    function _deposit(address token, uint256 amount) private returns (uint256 dividendId) {
        dividendId = ++dividendsCount;
        uint256 perShare = amount / nft.totalSupply();
        dividends[dividendId] = Dividend(token, perShare);
        emit DividendDeposited(dividendId, msg.sender, token, amount, perShare);
    }
}
